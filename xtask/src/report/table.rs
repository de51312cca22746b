//! A plain table, rendered either as aligned text for the terminal or as markdown.

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub title: String,
    /// A sentence under the title: how to read it.
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns (by index) aligned left; the rest are numbers, aligned right.
    pub left: Vec<usize>,
}

impl Table {
    pub fn new(title: &str, caption: &str, header: &[&str]) -> Table {
        Table {
            title: title.to_string(),
            caption: caption.to_string(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            left: vec![0],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < w.len() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
        }
        w
    }

    fn cell(&self, i: usize, s: &str, w: usize) -> String {
        let pad = w.saturating_sub(s.chars().count());
        if self.left.contains(&i) {
            format!("{s}{}", " ".repeat(pad))
        } else {
            format!("{}{s}", " ".repeat(pad))
        }
    }

    /// Aligned columns, two spaces apart, indented under a bold-free title line.
    pub fn text(&self) -> String {
        let w = self.widths();
        let mut out = format!("{}\n", self.title);
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| self.cell(i, c, w.get(i).copied().unwrap_or(0)))
                .collect();
            format!("  {}\n", parts.join("  ").trim_end())
        };
        out.push_str(&line(&self.header));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        if !self.caption.is_empty() {
            out.push_str(&format!("{}\n\n", self.caption));
        }
        out.push_str(&format!("| {} |\n", self.header.join(" | ")));
        let seps: Vec<&str> = (0..self.header.len())
            .map(|i| if self.left.contains(&i) { ":--" } else { "--:" })
            .collect();
        out.push_str(&format!("|{}|\n", seps.join("|")));
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_line_up_and_numbers_align_right() {
        let mut t = Table::new("T", "", &["name", "MiB/s"]);
        t.row(vec!["a".into(), "1.0".into()]);
        t.row(vec!["longer".into(), "100.0".into()]);
        assert_eq!(
            t.text(),
            "T\n  name    MiB/s\n  a         1.0\n  longer  100.0\n"
        );
    }

    #[test]
    fn markdown_has_one_separator_per_column() {
        let mut t = Table::new("T", "how", &["name", "x"]);
        t.row(vec!["a".into(), "1".into()]);
        assert_eq!(
            t.markdown(),
            "### T\n\nhow\n\n| name | x |\n|:--|--:|\n| a | 1 |\n\n"
        );
    }
}
