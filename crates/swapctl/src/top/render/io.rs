//! Throughput sparklines (pages in/s, out/s) and the selected device's latency percentiles.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Sparkline};
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

/// Sparklines of pages in/s and out/s with their current rates; when there are 8 rows or more,
/// also the selected device's reads/s and writes/s (I/Os, above its latency lines). Shared by
/// the compact view.
pub fn sparklines(frame: &mut Frame, area: Rect, state: &State) {
    let device = state.selected_device().and_then(|d| {
        let (reads, writes) = state.history.devices.get(&d.id)?;
        let rates = state.rates.devices.get(&d.id).copied().unwrap_or_default();
        Some((reads, writes, rates))
    });
    match device {
        Some((reads, writes, rates)) if area.height >= 8 => {
            let rows: [Rect; 4] = Layout::vertical([Constraint::Fill(1); 4]).areas(area);
            series(
                frame,
                rows[0],
                "pages in",
                state.rates.pages_in,
                &state.history.pages_in,
                Color::Green,
            );
            series(
                frame,
                rows[1],
                "pages out",
                state.rates.pages_out,
                &state.history.pages_out,
                Color::Magenta,
            );
            series(frame, rows[2], "reads", rates.reads, reads, Color::Cyan);
            series(frame, rows[3], "writes", rates.writes, writes, Color::Blue);
        }
        _ => {
            let [top, bottom] =
                Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(area);
            series(
                frame,
                top,
                "in",
                state.rates.pages_in,
                &state.history.pages_in,
                Color::Green,
            );
            series(
                frame,
                bottom,
                "out",
                state.rates.pages_out,
                &state.history.pages_out,
                Color::Magenta,
            );
        }
    }
}

/// One sparkline with its name, current rate and peak to its left.
fn series(frame: &mut Frame, row: Rect, name: &str, now: f64, ring: &VecDeque<u64>, color: Color) {
    let [label, spark] =
        Layout::horizontal([Constraint::Length(10), Constraint::Fill(1)]).areas(row);
    let text = if label.height >= 2 {
        let mut lines = vec![
            Line::from(format::fit_left(name, label.width as usize))
                .bold()
                .fg(color),
            Line::from(format!("{}/s", format::rate(now))),
        ];
        if label.height >= 3 {
            let peak = ring.iter().copied().max().unwrap_or(0);
            lines.push(Line::from(format!("max {}", format::short_count(peak))).dim());
        }
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

/// Read and write p50 / p99 / p99.9 of the selected device, as three lines of fixed columns.
fn latency(frame: &mut Frame, area: Rect, state: &State) {
    let Some(device) = state.selected_device() else {
        return;
    };
    let name_width = (area.width as usize).saturating_sub(3 * 8);
    let row = |name: &str, l: &device::LatencySummary| {
        let measured = l.count > 0;
        format!(
            "{name:<name_width$}{:>8}{:>8}{:>8}",
            format::micros(l.p50_us, measured),
            format::micros(l.p99_us, measured),
            format::micros(l.p999_us, measured),
        )
    };
    let title = format!("{} latency", format::short_name(&device.path));
    let title = format::fit_left(&title, name_width);
    let lines = vec![
        Line::from(format!(
            "{title:<name_width$}{:>8}{:>8}{:>8}",
            "p50", "p99", "p99.9"
        ))
        .bold(),
        Line::from(row("read", &device.io.read_latency)),
        Line::from(row("write", &device.io.write_latency)),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}
