//! The device table: one row per swap area and a Total row, with a usage bar scaled like
//! FreeBSD's `systat -swap`.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{fill_color, format, panel};
use crate::top::state::{DeviceRates, SortColumn, State, used_fraction};
use pager::{DeviceState, DeviceStats};

/// Widths of the fixed columns of the full table: Pri, Size, Used, Bad, I/O, r/s, w/s, r p99,
/// w p99.
const FIXED: [u16; 9] = [4, 5, 5, 4, 4, 5, 5, 6, 6];
const COLUMN_SPACING: u16 = 1;
/// Fixed columns of the compact table: Used%, r/s, w/s.
const COMPACT_FIXED: [u16; 3] = [4, 5, 5];

/// Draw the table into `area` (borders included). `compact` keeps name, use, and rates only.
pub fn draw(frame: &mut Frame, area: Rect, state: &State, compact: bool) {
    let Some(stats) = &state.stats else { return };
    let block = panel(format!(" Devices ({}) ", stats.devices.len()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let longest = stats
        .devices
        .iter()
        .map(|d| d.path.chars().count())
        .max()
        .unwrap_or(0)
        .max(6) as u16;
    let (widths, shape) = columns(inner.width, longest, compact);
    let buf = frame.buffer_mut();
    put_row(buf, inner, inner.y, &widths, header(state, shape));
    buf.set_style(
        line(inner, inner.y),
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    );
    // Rows between the column header and the Total row (which needs a third line).
    let has_total = inner.height >= 3;
    let visible = (inner.height - 1 - u16::from(has_total)) as usize;
    device_rows(buf, inner, state, &widths, shape, visible);
    if has_total {
        total_row(buf, inner, state, &widths, shape);
    }
}

/// The widths of the columns in `width` cells, and the shape of a row: the fixed columns
/// get theirs, the name what it needs up to half the rest, the bar the remainder.
fn columns(width: u16, longest: u16, compact: bool) -> (Vec<u16>, Shape) {
    let fixed: &[u16] = if compact { &COMPACT_FIXED } else { &FIXED };
    let spacing = COLUMN_SPACING * (fixed.len() as u16 + 1);
    let flexible = width.saturating_sub(fixed.iter().sum::<u16>() + spacing);
    let name_width = longest.min(flexible / 2).max(flexible.min(8));
    let bar_width = flexible.saturating_sub(name_width);
    let mut widths = vec![name_width];
    if compact {
        widths.extend([COMPACT_FIXED[0], bar_width]);
        widths.extend(&COMPACT_FIXED[1..]);
    } else {
        widths.extend(&FIXED[..3]);
        widths.push(bar_width);
        widths.extend(&FIXED[3..]);
    }
    let shape = Shape {
        name_width,
        bar_width,
        compact,
    };
    (widths, shape)
}

/// The column titles, the sort column marked with `▼`, the bar's title its scale.
fn header(state: &State, shape: Shape) -> Vec<Line<'static>> {
    let sorted = |column: SortColumn, title: &'static str| {
        if state.sort == column {
            format!("{title}▼")
        } else {
            title.to_string()
        }
    };
    let scale = scale(shape.bar_width as usize);
    if shape.compact {
        vec![
            left(sorted(SortColumn::Name, "Device")),
            right(sorted(SortColumn::Used, "Use")),
            left(scale),
            right(sorted(SortColumn::ReadsPerSec, "r/s")),
            right(sorted(SortColumn::WritesPerSec, "w/s")),
        ]
    } else {
        vec![
            left(sorted(SortColumn::Name, "Device")),
            right(sorted(SortColumn::Priority, "Pri")),
            right("Size".to_string()),
            right(sorted(SortColumn::Used, "Used")),
            left(scale),
            right("Bad".to_string()),
            right("I/O".to_string()),
            right(sorted(SortColumn::ReadsPerSec, "r/s")),
            right(sorted(SortColumn::WritesPerSec, "w/s")),
            right("r p99".to_string()),
            right("w p99".to_string()),
        ]
    }
}

/// One line of `area` at `y`.
fn line(area: Rect, y: u16) -> Rect {
    Rect {
        y,
        height: 1,
        ..area
    }
}

/// The device rows under the header, in the state's order, `visible` of them, scrolled
/// just enough to keep the selection on screen (and shown reversed).
fn device_rows(
    buf: &mut Buffer,
    inner: Rect,
    state: &State,
    widths: &[u16],
    shape: Shape,
    visible: usize,
) {
    let Some(stats) = &state.stats else { return };
    let order = state.device_order();
    let selected = order
        .iter()
        .position(|&i| Some(stats.devices[i].id) == state.selected);
    let first = selected.map_or(0, |s| (s + 1).saturating_sub(visible));
    let page = stats.page_size.max(1);
    let rows = order.iter().enumerate().skip(first).take(visible);
    for (y, (row, &i)) in (inner.y + 1..).zip(rows) {
        let d = &stats.devices[i];
        let rates = state.rates.devices.get(&d.id).copied().unwrap_or_default();
        put_row(
            buf,
            inner,
            y,
            widths,
            device_row(d, rates, page, shape, false),
        );
        if Some(row) == selected {
            buf.set_style(
                line(inner, y),
                Style::new().add_modifier(Modifier::REVERSED),
            );
        }
    }
}

/// The Total row on the last line: sizes and pages of the whole space, rates summed.
fn total_row(buf: &mut Buffer, inner: Rect, state: &State, widths: &[u16], shape: Shape) {
    let Some(stats) = &state.stats else { return };
    let total = DeviceStats {
        path: "Total".to_string(),
        size_bytes: stats.devices.iter().map(|d| d.size_bytes).sum(),
        total_pages: stats.total_pages,
        used_pages: stats.used_pages,
        bad_pages: stats.bad_pages,
        io: device::AreaStats {
            in_flight: stats.devices.iter().map(|d| d.io.in_flight).sum(),
            ..device::AreaStats::default()
        },
        ..DeviceStats::default()
    };
    let rates = DeviceRates {
        reads: state.rates.devices.values().map(|r| r.reads).sum(),
        writes: state.rates.devices.values().map(|r| r.writes).sum(),
    };
    let y = inner.y + inner.height - 1;
    let page = stats.page_size.max(1);
    put_row(
        buf,
        inner,
        y,
        widths,
        device_row(&total, rates, page, shape, true),
    );
    buf.set_style(line(inner, y), Style::new().add_modifier(Modifier::BOLD));
}

/// Write one row's cells at line `y` of `area`, each in its column, one space apart.
fn put_row(buf: &mut Buffer, area: Rect, y: u16, widths: &[u16], cells: Vec<Line<'static>>) {
    let mut x = area.x;
    let end = area.x + area.width;
    for (cell, &width) in cells.into_iter().zip(widths) {
        let width = width.min(end.saturating_sub(x));
        cell.render(Rect::new(x, y, width, 1), buf);
        x = (x + width + COLUMN_SPACING).min(end);
    }
}

fn left(s: String) -> Line<'static> {
    Line::from(s)
}

fn right(s: String) -> Line<'static> {
    Line::from(s).alignment(Alignment::Right)
}

/// Column widths of the flexible columns, and which table this is.
#[derive(Clone, Copy)]
struct Shape {
    name_width: u16,
    bar_width: u16,
    compact: bool,
}

/// One row. The Total row (`is_total`) passes a synthetic device summing the others, and
/// shows blanks where a sum means nothing (priority, latency).
fn device_row(
    d: &DeviceStats,
    rates: DeviceRates,
    page: u64,
    shape: Shape,
    is_total: bool,
) -> Vec<Line<'static>> {
    let Shape {
        name_width,
        bar_width,
        compact,
    } = shape;
    let name = format::device_name(&d.path, name_width as usize);
    let name = match d.state {
        DeviceState::Failed => Line::styled(name, Style::new().fg(Color::Red).bold()),
        DeviceState::Draining { .. } => Line::styled(name, Style::new().fg(Color::Yellow)),
        DeviceState::Failing => Line::styled(name, Style::new().fg(Color::Red)),
        DeviceState::Reconnecting { .. } => Line::styled(name, Style::new().fg(Color::Yellow)),
        DeviceState::Active => Line::from(name),
    };
    let fraction = used_fraction(d);
    let bar = usage_cell(d, fraction, bar_width as usize);
    let r = right(format::rate(rates.reads));
    let w = right(format::rate(rates.writes));
    if compact {
        return vec![name, right(format!("{:.0}%", fraction * 100.0)), bar, r, w];
    }
    let latency = |l: &device::LatencySummary| right(format::micros(l.p99_us, l.count > 0));
    let (priority, read_p99, write_p99) = if is_total {
        (
            right(String::new()),
            right(String::new()),
            right(String::new()),
        )
    } else {
        (
            right(d.priority.to_string()),
            latency(&d.io.read_latency),
            latency(&d.io.write_latency),
        )
    };
    // Bad pages (header list, quarantined blocks) and pages that failed their checksum:
    // both are storage the admin must look at.
    let bad_or_corrupt = d.bad_pages + d.corrupt;
    let bad = if bad_or_corrupt > 0 {
        right(format::short_count(bad_or_corrupt)).style(Style::new().fg(Color::Red))
    } else {
        right("0".to_string())
    };
    vec![
        name,
        priority,
        right(format::bytes(d.size_bytes)),
        right(format::bytes(d.used_pages * page)),
        bar,
        bad,
        right(format::short_count(d.io.in_flight)),
        r,
        w,
        read_p99,
        write_p99,
    ]
}

/// The bar cell: usage scaled to the column, or drain progress for a device going off, or
/// the word FAILED.
fn usage_cell(d: &DeviceStats, fraction: f64, width: usize) -> Line<'static> {
    match d.state {
        DeviceState::Failed => {
            Line::from(Span::styled("FAILED", Style::new().fg(Color::Red).bold()))
        }
        DeviceState::Draining { moved, total } => {
            let done = if total == 0 {
                1.0
            } else {
                moved as f64 / total as f64
            };
            let text = format!("off {:>3.0}% ", done * 100.0);
            let rest = width.saturating_sub(text.chars().count());
            let mut spans = vec![Span::styled(text, Style::new().fg(Color::Yellow).bold())];
            spans.extend(bar(done, rest, Color::Yellow));
            Line::from(spans)
        }
        DeviceState::Reconnecting { .. } => {
            let text = "RECONNECTING ";
            let rest = width.saturating_sub(text.chars().count());
            let mut spans = vec![Span::styled(text, Style::new().fg(Color::Yellow).bold())];
            spans.extend(bar(fraction, rest, Color::Yellow));
            Line::from(spans)
        }
        DeviceState::Failing => {
            let text = "FAILING ";
            let rest = width.saturating_sub(text.chars().count());
            let mut spans = vec![Span::styled(text, Style::new().fg(Color::Red).bold())];
            spans.extend(bar(fraction, rest, Color::Red));
            Line::from(spans)
        }
        DeviceState::Active => Line::from(bar(fraction, width, fill_color(fraction))),
    }
}

/// A bar `width` cells wide filled to `fraction`, in eighths of a cell, on a dim track.
pub fn bar(fraction: f64, width: usize, color: Color) -> Vec<Span<'static>> {
    const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = (fraction.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let (full, part) = (eighths / 8, eighths % 8);
    let mut filled = "█".repeat(full);
    filled.push_str(EIGHTHS[part]);
    let used = full + usize::from(part > 0);
    vec![
        Span::styled(filled, Style::new().fg(color)),
        Span::styled(
            "░".repeat(width.saturating_sub(used)),
            Style::new().fg(Color::DarkGray),
        ),
    ]
}

/// The bar column's header: `0%`, `50`, `100%` at their places, as `systat -swap` marks its scale.
fn scale(width: usize) -> String {
    if width < 6 {
        return "Use".chars().take(width).collect();
    }
    let mut cells = vec![' '; width];
    let mut put = |at: usize, text: &str| {
        for (i, c) in text.chars().enumerate() {
            if let Some(cell) = cells.get_mut(at + i) {
                *cell = c;
            }
        }
    };
    put(0, "0%");
    if width >= 12 {
        put(width / 2 - 1, "50");
    }
    put(width - 4, "100%");
    cells.into_iter().collect()
}
