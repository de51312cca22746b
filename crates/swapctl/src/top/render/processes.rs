//! The processes panel: the programs running on the swap space (`swapctl run`), one row
//! each, with what they keep in memory against their limit, what they have on swap, their
//! faults per second and their read errors (each a SIGBUS to the program, in red).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table};

use super::{fill_color, format, panel};
use crate::top::state::State;

/// Rows the panel wants for `n` programs: the border, the column header and a row each.
pub fn height(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX).saturating_add(3)
}

/// Bytes of `pages` pages, whatever a report claims.
fn bytes(pages: u64, page_size: u64) -> String {
    format::bytes(pages.saturating_mul(page_size))
}

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let page = state.stats.as_ref().map_or(4096, |s| s.page_size.max(1));
    let block = panel(format!(" Processes ({}) ", state.processes.len()));
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let header = Row::new([
        right("PID".into()),
        Cell::from("User"),
        Cell::from("Command"),
        right("Resid".into()),
        right("Limit".into()),
        right("Swapped".into()),
        right("Flt/s".into()),
        right("RdErr".into()),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows = state.processes.iter().map(|p| {
        let fraction = if p.limit_pages == 0 {
            0.0
        } else {
            p.resident_pages as f64 / p.limit_pages as f64
        };
        let rate = state.fault_rates.get(&p.pid).copied().unwrap_or_default();
        let errors = if p.read_errors > 0 {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        Row::new([
            right(p.pid.to_string()),
            Cell::from(format::fit_left(&state.user(p.uid), 8)),
            Cell::from(crate::format::command(&p.command, 200)),
            Cell::from(
                Line::from(Span::styled(
                    bytes(p.resident_pages, page),
                    Style::new().fg(fill_color(fraction)),
                ))
                .right_aligned(),
            ),
            right(bytes(p.limit_pages, page)),
            right(bytes(p.swapped_pages, page)),
            right(format::rate(rate)),
            Cell::from(Line::from(format::count(p.read_errors)).right_aligned()).style(errors),
        ])
    });
    let widths = [
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(5),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(block);
    frame.render_widget(table, area);
}
