//! A plain text table: columns sized to their widest cell, numbers right-aligned, or with
//! `raw` one space between fields and no padding (for scripts, like `swapon --raw`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Render `rows` (the first may be a heading) under `align` (one per column). Lines end
/// with `\n` and carry no trailing spaces.
pub fn render(rows: &[Vec<String>], align: &[Align], raw: bool) -> String {
    let cols = align.len();
    let mut width = vec![0usize; cols];
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(cols) {
            if raw {
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(cell);
                continue;
            }
            if i > 0 {
                line.push(' ');
            }
            let pad = width[i].saturating_sub(cell.chars().count());
            match align[i] {
                Align::Left => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
