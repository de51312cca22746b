//! The three pbuf pools as gauges: in use against the limit, and how many callers waited.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Gauge, Paragraph};

use super::{fill_color, format, panel};
use crate::top::state::State;
use pager::PoolStats;

/// Rows the panel takes: three gauges and the border.
pub const HEIGHT: u16 = 5;

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let Some(stats) = &state.stats else { return };
    let block = panel(format!(" pbufs (nswbuf {}) ", stats.tunables.nswbuf));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let pools = [
        ("read", stats.pbufs.read),
        ("sync", stats.pbufs.sync_write),
        ("async", stats.pbufs.async_write),
    ];
    let rows: [Rect; 3] = Layout::vertical([Constraint::Length(1); 3]).areas(inner);
    for ((name, pool), row) in pools.into_iter().zip(rows.iter()) {
        pool_row(frame, *row, name, pool);
    }
}

/// `name [gauge in_use/max] waits N`.
pub fn pool_row(frame: &mut Frame, area: Rect, name: &'static str, pool: PoolStats) {
    let [label, gauge, waits] = Layout::horizontal([
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Length(12),
    ])
    .areas(area);
    let ratio = if pool.max == 0 {
        0.0
    } else {
        (pool.in_use as f64 / pool.max as f64).min(1.0)
    };
    frame.render_widget(Paragraph::new(Line::from(name).bold()), label);
    frame.render_widget(
        Gauge::default()
            .ratio(ratio)
            .label(format!("{}/{}", pool.in_use, pool.max))
            .gauge_style(Style::new().fg(fill_color(ratio)).bg(Color::DarkGray))
            .use_unicode(true),
        gauge,
    );
    let waits_style = if pool.waits > 0 {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    frame.render_widget(
        Paragraph::new(
            Line::from(format!("waits {}", format::count(pool.waits))).style(waits_style),
        )
        .right_aligned(),
        waits,
    );
}
