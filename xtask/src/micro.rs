//! The blist / swmeta micro-benchmarks, summarised.
//!
//! Running `cargo bench` from inside the bench would build two more release binaries and,
//! for swmeta, run for about ten minutes on a small machine: not "one command in a minute".
//! Each crate's README keeps the tables of its latest `cargo bench` run instead, under a
//! heading that mentions benchmarks or figures; we copy those tables into the report, with
//! where they came from, and say how to refresh them.

use std::path::{Path, PathBuf};

use crate::results::Micro;

pub fn summaries() -> Vec<Micro> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    ["blist", "swmeta"]
        .iter()
        .map(|c| {
            let readme = root.join("crates").join(c).join("README.md");
            let tables = std::fs::read_to_string(&readme)
                .map(|t| bench_tables(&t))
                .unwrap_or_default();
            let link = format!("../../crates/{c}/README.md");
            let lines = if tables.is_empty() {
                vec![(
                    format!("cargo bench -p {c}"),
                    format!("no figures found in crates/{c}/README.md; run it for fresh ones"),
                )]
            } else {
                vec![(
                    format!("cargo bench -p {c}"),
                    format!(
                        "{} table rows from crates/{c}/README.md (not re-run: see the markdown)",
                        tables.iter().filter(|l| is_row(l)).count()
                    ),
                )]
            };
            Micro {
                crate_name: (*c).to_string(),
                lines,
                link: Some(link),
                tables,
            }
        })
        .collect()
}

fn is_row(line: &str) -> bool {
    line.starts_with('|') && !line.contains("---")
}

/// The markdown table lines of the README's benchmark section (a `#` heading containing
/// "bench" or "figures"), with one blank line between tables.
fn bench_tables(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in readme.lines() {
        if line.starts_with('#') {
            let h = line.to_ascii_lowercase();
            inside = h.contains("bench") || h.contains("figures");
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim_start().starts_with('|') {
            out.push(line.trim().to_string());
        } else if out.last().is_some_and(|l: &String| !l.is_empty()) {
            out.push(String::new());
        }
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tables_under_a_benchmark_heading_are_taken() {
        let md = "# x\n| no | no |\n## Benchmarks\ntext\n| a | b |\n|---|---|\n| 1 | 2 |\n\nmore\n| c |\n## Other\n| no |\n";
        assert_eq!(
            bench_tables(md),
            ["| a | b |", "|---|---|", "| 1 | 2 |", "", "| c |"]
        );
    }
}
