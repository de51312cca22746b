//! State to frame: a pure function of [`State`], one function per panel.
//!
//! [`draw`] reads the state and writes cells; it never blocks, allocates beyond the frame's
//! strings, or looks at the clock, so a fixture renders the same frame every time. Terminals of
//! 80 columns or more get the full layout (header, devices, the programs running on the swap
//! space when there are any, fragmentation, pbufs, I/O); narrower
//! ones get a compact view; very small ones a note asking for more room.

mod compact;
mod devices;
pub mod format;
mod frag;
mod header;
mod help;
mod io;
mod pbufs;
mod processes;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::state::{Connection, State};

/// Below this width the compact view is drawn.
pub const FULL_WIDTH: u16 = 80;
/// Below these sizes nothing useful fits.
const MIN_WIDTH: u16 = 30;
const MIN_HEIGHT: u16 = 8;

/// Draw one frame of `state`.
pub fn draw(frame: &mut Frame, state: &State) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!("swapctl top needs at least {MIN_WIDTH}x{MIN_HEIGHT}");
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [body, status] = Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(area);
    if state.stats.is_none() {
        header::title(frame, Rect { height: 1, ..body }, state);
        let rest = Rect {
            y: body.y + 1,
            height: body.height - 1,
            ..body
        };
        not_connected(frame, rest, state);
    } else if area.width < FULL_WIDTH {
        compact::draw(frame, body, state);
    } else {
        full(frame, body, state);
    }
    if !state.is_connected() && state.stats.is_some() {
        // Stale figures stay for context, dimmed, under the title's banner.
        let stale = Rect {
            y: body.y + 1,
            height: body.height - 1,
            ..body
        };
        frame
            .buffer_mut()
            .set_style(stale, Style::new().fg(Color::DarkGray));
    }
    status_line(frame, status, state);
    if state.help {
        help::draw(frame, area);
    }
}

/// The layout of 80 columns and more: header, devices, the programs running on the swap
/// space (only when there are any), then fragmentation beside pbufs and I/O.
fn full(frame: &mut Frame, area: Rect, state: &State) {
    let device_rows = state.stats.as_ref().map_or(0, |s| s.devices.len()) as u16;
    // Table: borders, column header, rows, Total. The lower panels keep at least 12 rows.
    let lower_min = 12;
    let devices_height = (device_rows + 4)
        .min(area.height.saturating_sub(header::HEIGHT + lower_min))
        .max(5);
    // The processes panel takes what it needs of the lower panels' rows, leaving them 8
    // (the pbufs and a little I/O), and at least its header and one program.
    let processes_height = if state.processes.is_empty() {
        0
    } else {
        let room = area
            .height
            .saturating_sub(header::HEIGHT + devices_height + 8);
        processes::height(state.processes.len()).min(room.max(4))
    };
    let [head, table, programs, lower] = Layout::vertical([
        Constraint::Length(header::HEIGHT),
        Constraint::Length(devices_height),
        Constraint::Length(processes_height),
        Constraint::Fill(1),
    ])
    .areas(area);
    header::draw(frame, head, state);
    devices::draw(frame, table, state, false);
    if processes_height > 0 {
        processes::draw(frame, programs, state);
    }
    let [left, right] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(lower);
    frag::draw(frame, left, state);
    let [pbuf_area, io_area] =
        Layout::vertical([Constraint::Length(pbufs::HEIGHT), Constraint::Fill(1)]).areas(right);
    pbufs::draw(frame, pbuf_area, state);
    io::draw(frame, io_area, state);
}

/// The body before the first successful poll: what we are trying to reach and why it fails.
fn not_connected(frame: &mut Frame, area: Rect, state: &State) {
    let mut lines = vec![
        Line::from(""),
        Line::from(format!("Waiting for {}", state.source)).bold(),
        Line::from(format!(
            "retrying every {}",
            format::interval(state.interval)
        )),
        Line::from(""),
    ];
    if let Connection::Disconnected { error, failures } = &state.connection {
        lines.push(Line::from(format!("attempt {failures} failed:")));
        lines.push(Line::from(error.clone()).style(Style::new().fg(Color::Red)));
        lines.push(Line::from(""));
        lines.push(Line::from("Is `swapctl daemon` running, and is this its socket?").dim());
    }
    let paragraph = Paragraph::new(lines)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true })
        .block(Block::bordered().title(" not connected "));
    frame.render_widget(paragraph, area);
}

/// The newest last error of a swap area out of service (reconnecting, failing, failed), as
/// the bottom line says it: why the area is in trouble.
fn device_trouble(state: &State) -> Option<String> {
    state
        .stats
        .as_ref()?
        .devices
        .iter()
        .filter(|d| d.state != pager::DeviceState::Active)
        .filter_map(|d| d.last_error.as_ref().map(|e| (e, d)))
        .max_by_key(|(e, _)| e.at_unix_ms)
        .map(|(e, d)| format!("{}: last error: {}", d.path, e.what))
}

/// The bottom line: a message if there is one, else the last error while disconnected, else
/// that of a swap area out of service, else the keys.
fn status_line(frame: &mut Frame, area: Rect, state: &State) {
    let line = if let Some(message) = &state.message {
        let style = if message.is_error {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Cyan)
        };
        Line::from(Span::styled(message.text.clone(), style))
    } else if let Connection::Disconnected { error, .. } = &state.connection {
        Line::from(Span::styled(
            format!("last error: {error}"),
            Style::new().fg(Color::Red),
        ))
    } else if let Some(text) = device_trouble(state) {
        Line::from(Span::styled(text, Style::new().fg(Color::Red)))
    } else {
        let key = |k: &'static str| Span::styled(k, Style::new().fg(Color::Black).bg(Color::Cyan));
        let sort = format!(" sort:{} ", state.sort.label());
        let mut spans = vec![
            key("q"),
            Span::raw(" quit "),
            key("?"),
            Span::raw(" help "),
            key("↑↓"),
            Span::raw(" select "),
            key("s"),
            Span::raw(sort),
            key("f"),
            Span::raw(if state.frozen { " resume " } else { " freeze " }),
        ];
        if area.width >= FULL_WIDTH {
            spans.extend([
                key("+-"),
                Span::raw(" interval "),
                key("aA"),
                Span::raw(" async max"),
            ]);
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// Green, yellow or red by how full something is (`fraction` of 1).
fn fill_color(fraction: f64) -> Color {
    if fraction >= 0.9 {
        Color::Red
    } else if fraction >= 0.7 {
        Color::Yellow
    } else {
        Color::Green
    }
}

/// A bordered panel with a title, the way every panel looks.
fn panel(title: String) -> Block<'static> {
    Block::bordered().title(Span::styled(title, Style::new().bold()))
}
