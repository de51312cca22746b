//! The help overlay: every key, drawn over the panels.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::panel;

const KEYS: [(&str, &str); 9] = [
    ("q, Ctrl-C", "quit"),
    ("?", "show or hide this help"),
    ("Esc", "close this help, clear the message"),
    ("Tab, ↓, j", "select the next device"),
    ("Shift-Tab, ↑, k", "select the previous device"),
    ("s", "cycle the sort column"),
    ("f", "freeze / resume the display"),
    ("+, -", "slower / faster refresh (0.1 s to 60 s)"),
    ("a, A", "lower / raise swap_async_max"),
];

/// Centre a box over `area`, clear it, and list the keys.
pub fn draw(frame: &mut Frame, area: Rect) {
    let width = area.width.min(64);
    let height = area.height.min(KEYS.len() as u16 + 6);
    let popup = area.centered(Constraint::Length(width), Constraint::Length(height));
    frame.render_widget(Clear, popup);
    let block =
        panel(" Help — Esc or ? to close ".to_string()).border_style(Style::new().fg(Color::Cyan));
    let mut lines = vec![Line::from("")];
    lines.extend(KEYS.iter().map(|(key, what)| {
        Line::from(vec![
            Span::styled(format!(" {key:>16}  "), Style::new().fg(Color::Cyan).bold()),
            Span::raw(*what),
        ])
    }));
    lines.push(Line::from(""));
    lines.push(Line::from("  Free ranges and latency follow the selected device.").dim());
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(block),
        popup,
    );
}
