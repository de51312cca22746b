//! Fragmentation of the selected device: its blist's free ranges by Fibonacci size class.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph};

use super::{format, panel};
use crate::top::state::State;
use pager::FragStats;

/// Narrowest bar that still carries a label and a value.
const MIN_BAR: u16 = 4;
const MAX_BAR: u16 = 6;

pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    let device = state.selected_device();
    let title = match device {
        Some(d) => format!(
            " Free ranges of {} (pages, log) ",
            format::short_name(&d.path)
        ),
        None => " Free ranges ".to_string(),
    };
    let block = panel(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(device) = device else { return };
    let [summary_area, chart_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
    frame.render_widget(Paragraph::new(summary(&device.frag)), summary_area);
    if device.frag.buckets.is_empty() {
        let text = match device.state {
            pager::DeviceState::Draining { .. } => "going off: no new allocations here",
            _ => "no free space",
        };
        frame.render_widget(Paragraph::new(Line::from(text).centered()), chart_area);
        return;
    }
    frame.render_widget(chart(&device.frag, chart_area.width), chart_area);
}

/// One line: how many free ranges, the largest, the average size.
pub fn summary(frag: &FragStats) -> String {
    format!(
        "{} {}  largest {}  avg {}",
        format::count(frag.free_ranges),
        if frag.free_ranges == 1 {
            "range"
        } else {
            "ranges"
        },
        format::short_count(frag.largest),
        format::short_count(frag.average)
    )
}

/// Bar heights on a log scale: range counts run from thousands of 1-page holes down to a
/// handful of long runs, and on a linear scale the long runs (the ones that matter) vanish.
fn log_height(count: u64) -> u64 {
    if count == 0 {
        0
    } else {
        // 10 steps per doubling, 1 range still gets a visible stub.
        10 + ((count as f64).log2() * 10.0).round() as u64
    }
}

/// A vertical bar per size class, labelled with the class's smallest size. When the classes
/// do not fit the width at [`MIN_BAR`] cells each, neighbours are merged (counts summed) so the
/// chart stays whole rather than cut off at the big end, where the interesting ranges are.
fn chart(frag: &FragStats, width: u16) -> BarChart<'static> {
    let n = frag.buckets.len().max(1);
    let fit = |bar: u16| ((width + 1) / (bar + 1)).max(1) as usize;
    let group = n.div_ceil(fit(MIN_BAR));
    let groups: Vec<(u64, u64)> = frag
        .buckets
        .chunks(group)
        .map(|c| (c[0].0, c.iter().map(|b| b.2).sum()))
        .collect();
    let bar_width = (MIN_BAR..=MAX_BAR)
        .rev()
        .find(|&w| fit(w) >= groups.len())
        .unwrap_or(MIN_BAR);
    let bars: Vec<Bar> = groups
        .iter()
        .map(|&(smallest, count)| {
            Bar::default()
                .value(log_height(count))
                .text_value(fit_count(count, bar_width as usize))
                .label(Line::from(fit_count(smallest, bar_width as usize)))
        })
        .collect();
    BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_width)
        .bar_gap(1)
        .bar_style(Style::new().fg(Color::Cyan))
        .value_style(Style::new().fg(Color::Black).bg(Color::Cyan))
        .label_style(Style::new().fg(Color::Gray))
}

/// A count in at most `width` columns: `1597` becomes `1.6k`, then `2k`, then `+`.
fn fit_count(n: u64, width: usize) -> String {
    let candidates = [
        n.to_string(),
        format::short_count(n),
        format!("{}k", n / 1000),
        format!("{}M", n / 1_000_000),
    ];
    candidates
        .into_iter()
        .find(|s| s.chars().count() <= width && !s.starts_with('0'))
        .unwrap_or_else(|| {
            if n == 0 {
                "0".to_string()
            } else {
                "+".to_string()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_range_is_singular() {
        let frag = |n| FragStats {
            free_ranges: n,
            largest: 7,
            average: 7,
            ..FragStats::default()
        };
        assert_eq!(summary(&frag(1)), "1 range  largest 7  avg 7");
        assert_eq!(summary(&frag(0)), "0 ranges  largest 7  avg 7");
        assert_eq!(summary(&frag(2)), "2 ranges  largest 7  avg 7");
    }
}
