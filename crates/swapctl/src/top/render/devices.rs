//! The device table: one row per swap area and a Total row, with a usage bar scaled like
//! FreeBSD's `systat -swap`.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState};

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
    let order = state.device_order();
    let longest = stats
        .devices
        .iter()
        .map(|d| d.path.chars().count())
        .max()
        .unwrap_or(0)
        .max(6) as u16;
    let fixed: &[u16] = if compact { &COMPACT_FIXED } else { &FIXED };
    let spacing = COLUMN_SPACING * (fixed.len() as u16 + 1);
    let flexible = inner
        .width
        .saturating_sub(fixed.iter().sum::<u16>() + spacing);
    // The name gets what it needs up to half the flexible room, the bar the rest.
    let name_width = longest.min(flexible / 2).max(flexible.min(8));
    let bar_width = flexible.saturating_sub(name_width);
    let mut widths = vec![Constraint::Length(name_width)];
    if compact {
        widths.push(Constraint::Length(COMPACT_FIXED[0]));
        widths.push(Constraint::Length(bar_width));
        widths.extend(COMPACT_FIXED[1..].iter().map(|&w| Constraint::Length(w)));
    } else {
        widths.extend(FIXED[..3].iter().map(|&w| Constraint::Length(w)));
        widths.push(Constraint::Length(bar_width));
        widths.extend(FIXED[3..].iter().map(|&w| Constraint::Length(w)));
    }

    let sorted = |column: SortColumn, title: &'static str| {
        if state.sort == column {
            format!("{title}▼")
        } else {
            title.to_string()
        }
    };
    let scale = scale(bar_width as usize);
    let header: Vec<Cell> = if compact {
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
    };
    let header =
        Row::new(header).style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));

    let page = stats.page_size.max(1);
    let shape = Shape {
        name_width,
        bar_width,
        compact,
    };
    let rows: Vec<Row> = order
        .iter()
        .map(|&i| {
            let d = &stats.devices[i];
            let rates = state.rates.devices.get(&d.id).copied().unwrap_or_default();
            device_row(d, rates, page, shape, false)
        })
        .collect();
    let selected = order
        .iter()
        .position(|&i| Some(stats.devices[i].id) == state.selected);

    let [table_area, total_area] = if inner.height >= 3 {
        let table = Rect {
            height: inner.height - 1,
            ..inner
        };
        let total = Rect {
            y: inner.y + inner.height - 1,
            height: 1,
            ..inner
        };
        [table, total]
    } else {
        [inner, Rect::default()]
    };
    let table = Table::new(rows, widths.clone())
        .header(header)
        .column_spacing(COLUMN_SPACING)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut table_state = TableState::new().with_selected(selected);
    frame.render_stateful_widget(table, table_area, &mut table_state);

    if total_area.height == 1 {
        let total = DeviceStats {
            path: "Total".to_string(),
            size_bytes: stats.devices.iter().map(|d| d.size_bytes).sum(),
            total_pages: stats.total_pages,
            used_pages: stats.used_pages,
            bad_pages: stats.bad_pages,
            in_flight: stats.devices.iter().map(|d| d.in_flight).sum(),
            ..DeviceStats::default()
        };
        let rates = DeviceRates {
            reads: state.rates.devices.values().map(|r| r.reads).sum(),
            writes: state.rates.devices.values().map(|r| r.writes).sum(),
        };
        let mut row = device_row(&total, rates, page, shape, true);
        row = row.style(Style::new().add_modifier(Modifier::BOLD));
        let table = Table::new([row], widths).column_spacing(COLUMN_SPACING);
        frame.render_widget(table, total_area);
    }
}

fn left(s: String) -> Cell<'static> {
    Cell::from(s)
}

fn right(s: String) -> Cell<'static> {
    Cell::from(Line::from(s).alignment(Alignment::Right))
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
) -> Row<'static> {
    let Shape {
        name_width,
        bar_width,
        compact,
    } = shape;
    let name = format::fit_left(&d.path, name_width as usize);
    let name = match d.state {
        DeviceState::Failed => Cell::from(Span::styled(name, Style::new().fg(Color::Red).bold())),
        DeviceState::Draining { .. } => {
            Cell::from(Span::styled(name, Style::new().fg(Color::Yellow)))
        }
        DeviceState::Active => Cell::from(name),
    };
    let fraction = used_fraction(d);
    let bar = Cell::from(usage_cell(d, fraction, bar_width as usize));
    let r = right(format::rate(rates.reads));
    let w = right(format::rate(rates.writes));
    if compact {
        return Row::new(vec![
            name,
            right(format!("{:.0}%", fraction * 100.0)),
            bar,
            r,
            w,
        ]);
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
            latency(&d.read_latency),
            latency(&d.write_latency),
        )
    };
    let bad = if d.bad_pages > 0 {
        Cell::from(
            Line::from(format::short_count(d.bad_pages))
                .alignment(Alignment::Right)
                .style(Style::new().fg(Color::Red)),
        )
    } else {
        right("0".to_string())
    };
    Row::new(vec![
        name,
        priority,
        right(format::bytes(d.size_bytes)),
        right(format::bytes(d.used_pages * page)),
        bar,
        bad,
        right(format::short_count(d.in_flight)),
        r,
        w,
        read_p99,
        write_p99,
    ])
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
