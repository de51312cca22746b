//! Throughput sparklines (pages in/s, out/s) and the selected device's latency percentiles.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline, Table};
use std::collections::VecDeque;

use super::{format, panel};
use crate::top::state::{History, State};

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let samples = state.history.pages_in.len();
    let span = format::uptime(state.interval.as_millis() as u64 * samples as u64);
    let block = panel(format!(" Paging, pages/s (last {span}) "));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let latency_rows = if inner.height >= 5 { 3 } else { 0 };
    let [sparks, latency_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(latency_rows)]).areas(inner);
    sparklines(frame, sparks, state);
    if latency_rows > 0 {
        latency(frame, latency_area, state);
    }
}

/// Two sparklines, pages in and pages out, with their current rates; shared by the compact view.
pub fn sparklines(frame: &mut Frame, area: Rect, state: &State) {
    let [top, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(area);
    let series: [(&str, f64, &VecDeque<u64>, Color, Rect); 2] = [
        (
            "in",
            state.rates.pages_in,
            &state.history.pages_in,
            Color::Green,
            top,
        ),
        (
            "out",
            state.rates.pages_out,
            &state.history.pages_out,
            Color::Magenta,
            bottom,
        ),
    ];
    for (name, now, ring, color, row) in series {
        let [label, spark] =
            Layout::horizontal([Constraint::Length(9), Constraint::Fill(1)]).areas(row);
        let mut lines = vec![Line::from(name).bold().fg(color)];
        lines.push(Line::from(format!("{}/s", format::rate(now))));
        if label.height >= 3 {
            let peak = ring.iter().copied().max().unwrap_or(0);
            lines.push(Line::from(format!("max {}", format::short_count(peak))).dim());
        }
        let text = if label.height >= 2 {
            lines
        } else {
            vec![Line::from(format!("{name} {}", format::rate(now)))]
        };
        frame.render_widget(Paragraph::new(text), label);
        let data = History::tail(ring, spark.width as usize);
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .style(Style::new().fg(color)),
            spark,
        );
    }
}

/// Read and write p50 / p99 / p99.9 of the selected device.
fn latency(frame: &mut Frame, area: Rect, state: &State) {
    let Some(device) = state.selected_device() else {
        return;
    };
    let num = |s: String| Cell::from(Line::from(s).alignment(Alignment::Right));
    let row = |name: &'static str, l: &device::LatencySummary| {
        let measured = l.count > 0;
        Row::new(vec![
            Cell::from(name),
            num(format::micros(l.p50_us, measured)),
            num(format::micros(l.p99_us, measured)),
            num(format::micros(l.p999_us, measured)),
        ])
    };
    let title = format!("{} latency", format::short_name(&device.path));
    let header = Row::new(vec![
        Cell::from(title),
        num("p50".to_string()),
        num("p99".to_string()),
        num("p99.9".to_string()),
    ])
    .style(Style::new().bold());
    let table = Table::new(
        [
            row("read", &device.read_latency),
            row("write", &device.write_latency),
        ],
        [
            Constraint::Fill(1),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(7),
        ],
    )
    .header(header);
    frame.render_widget(table, area);
}
