//! The view for terminals narrower than 80 columns: the same facts, fewer columns.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::header::{hysteresis_style, title};
use super::{devices, format, frag, io};
use crate::top::state::State;
use pager::{PagerStats, PbufStats};

/// Title, one line each of swap, host and pbufs, the compact device table, the selected
/// device's free ranges in a line, and the sparklines.
pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let Some(stats) = &state.stats else { return };
    let device_rows = stats.devices.len() as u16;
    let devices_height = (device_rows + 4).min(area.height.saturating_sub(9)).max(4);
    let [
        title_area,
        summary_area,
        host_area,
        table,
        pbuf_area,
        frag_area,
        io_area,
    ] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(devices_height),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    title(frame, title_area, state);
    frame.render_widget(Paragraph::new(summary(stats, state)), summary_area);
    frame.render_widget(Paragraph::new(host(stats, state)), host_area);
    devices::draw(frame, table, state, true);
    frame.render_widget(Paragraph::new(pbufs(&stats.pbufs)), pbuf_area);
    if let Some(d) = state.selected_device() {
        let line = Line::from(vec![
            Span::styled(
                format!("{} ", format::short_name(&d.path)),
                Style::new().bold(),
            ),
            Span::raw(frag::summary(&d.frag)),
        ]);
        frame.render_widget(Paragraph::new(line), frag_area);
    }
    io::sparklines(frame, io_area, state);
}

/// Used of total, the hysteresis state and the paging rates, in one line.
fn summary(stats: &PagerStats, state: &State) -> Line<'static> {
    let page = stats.page_size.max(1);
    let percent = if stats.total_pages == 0 {
        0.0
    } else {
        stats.used_pages as f64 * 100.0 / stats.total_pages as f64
    };
    Line::from(vec![
        Span::styled("Swap ", Style::new().bold()),
        Span::raw(format!(
            "{}/{} {percent:.0}% ",
            format::bytes(stats.used_pages * page),
            format::bytes(stats.total_pages * page),
        )),
        Span::styled(
            format!(" {} ", stats.hysteresis.label()),
            hysteresis_style(stats.hysteresis),
        ),
        Span::raw(format!(
            " in {}/s out {}/s",
            format::rate(state.rates.pages_in),
            format::rate(state.rates.pages_out)
        )),
    ])
}

/// The host's memory and kernel swap (when known) and the pager's swap counts.
fn host(stats: &PagerStats, state: &State) -> String {
    match &state.system {
        Some(m) => format!(
            "mem {}/{}  kswap {}/{}  swapin {} swapout {}",
            format::bytes(m.mem_used),
            format::bytes(m.mem_total),
            format::bytes(m.swap_used),
            format::bytes(m.swap_total),
            format::count(stats.counters.swapin),
            format::count(stats.counters.swapout),
        ),
        None => format!(
            "swapin {} swapout {}",
            format::count(stats.counters.swapin),
            format::count(stats.counters.swapout)
        ),
    }
}

/// The three pbuf pools, in use of max, and their waits (yellow when any).
fn pbufs(p: &PbufStats) -> Line<'static> {
    let pool = |name: &str, s: &pager::PoolStats| format!("{name} {}/{}", s.in_use, s.max);
    let waits = p.read.waits + p.sync_write.waits + p.async_write.waits;
    Line::from(vec![
        Span::styled("pbufs ", Style::new().bold()),
        Span::raw(format!(
            "{}  {}  {}  ",
            pool("r", &p.read),
            pool("sw", &p.sync_write),
            pool("aw", &p.async_write)
        )),
        Span::styled(
            format!("waits {}", format::count(waits)),
            if waits > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            },
        ),
    ])
}
