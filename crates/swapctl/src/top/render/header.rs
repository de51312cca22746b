//! The header: title bar, swap totals with the hysteresis state, paging counters, system memory.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format;
use crate::top::state::{Connection, State};

/// Rows the full header takes.
pub const HEIGHT: u16 = 4;

/// The colour of a hysteresis state: the one thing on screen that must catch the eye.
pub fn hysteresis_style(h: pager::Hysteresis) -> Style {
    if h.full {
        Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD)
    } else if h.almost_full {
        Style::new()
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
    }
}

/// The full header: title bar and three lines of figures.
pub fn draw(frame: &mut Frame, area: Rect, state: &State) {
    title(frame, Rect { height: 1, ..area }, state);
    let Some(stats) = &state.stats else { return };
    let page = stats.page_size.max(1);
    let percent = if stats.total_pages == 0 {
        0.0
    } else {
        stats.used_pages as f64 * 100.0 / stats.total_pages as f64
    };
    let label = |s: &'static str| Span::styled(s, Style::new().bold());
    let swap = Line::from(vec![
        label("Swap  "),
        Span::raw(format!(
            "total {}  used {} ({percent:.0}%)  free {}  bad {}  state ",
            format::bytes(stats.total_pages * page),
            format::bytes(stats.used_pages * page),
            format::bytes(stats.free_pages * page),
            format::bytes(stats.bad_pages * page),
        )),
        Span::styled(
            format!(" {} ", stats.hysteresis.label()),
            hysteresis_style(stats.hysteresis),
        ),
    ]);
    let c = &stats.counters;
    let mut paging = vec![
        label("Pager "),
        Span::raw(format!(
            "swapin {}  swapout {}  waits {}  ",
            format::count(c.swapin),
            format::count(c.swapout),
            format::count(c.intrans_waits),
        )),
    ];
    let fails = format!("fails {}", format::count(c.alloc_failures));
    paging.push(if c.alloc_failures > 0 {
        Span::styled(fails, Style::new().fg(Color::Red).bold())
    } else {
        Span::raw(fails)
    });
    let errors = c.read_errors + c.write_errors;
    if errors > 0 {
        paging.push(Span::styled(
            format!("  I/O errors {}", format::count(errors)),
            Style::new().fg(Color::Red).bold(),
        ));
    }
    paging.push(Span::raw(format!(
        "  objects {}  meta {}",
        format::count(stats.objects),
        format::bytes(stats.meta_bytes)
    )));
    let system = match &state.system {
        Some(m) => format!(
            "mem {}/{}  kernel swap {}/{}  ",
            format::bytes(m.mem_used),
            format::bytes(m.mem_total),
            format::bytes(m.swap_used),
            format::bytes(m.swap_total),
        ),
        None => "memory unknown  ".to_string(),
    };
    let system = Line::from(vec![
        label("Host  "),
        Span::raw(system),
        Span::raw(format!(
            "interleave {}  swap_async_max {}",
            stats.tunables.interleave, stats.tunables.swap_async_max
        )),
    ]);
    let body = Rect {
        y: area.y + 1,
        height: area.height.saturating_sub(1),
        ..area
    };
    frame.render_widget(Paragraph::new(vec![swap, Line::from(paging), system]), body);
}

/// The title bar: what we watch, the daemon's uptime and engine, the interval, and a banner
/// when frozen or disconnected.
pub fn title(frame: &mut Frame, area: Rect, state: &State) {
    let bar = Style::new().fg(Color::Black).bg(Color::Cyan);
    let mut left = format!(" swapkit top  {}", state.source);
    if let Some(stats) = &state.stats {
        left.push_str(&format!(
            "  {}  up {}",
            stats.engine,
            format::uptime(stats.uptime_ms)
        ));
    }
    left.push_str(&format!("  every {} ", format::interval(state.interval)));
    let banner = match &state.connection {
        Connection::Disconnected { failures, .. } => Some((
            format!(" DISCONNECTED — retrying ({failures}) "),
            Style::new().fg(Color::White).bg(Color::Red).bold(),
        )),
        Connection::Connecting => Some((" connecting… ".to_string(), bar.bold())),
        Connection::Connected if state.frozen => Some((
            " FROZEN ".to_string(),
            Style::new().fg(Color::Black).bg(Color::Yellow).bold(),
        )),
        Connection::Connected => None,
    };
    let width = area.width as usize;
    let banner_width = banner.as_ref().map_or(0, |(t, _)| t.chars().count());
    let left: String = left
        .chars()
        .take(width.saturating_sub(banner_width))
        .collect();
    let pad = width.saturating_sub(left.chars().count() + banner_width);
    let mut spans = vec![Span::styled(left, bar), Span::styled(" ".repeat(pad), bar)];
    if let Some((text, style)) = banner {
        spans.push(Span::styled(text, style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
