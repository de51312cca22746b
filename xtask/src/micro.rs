//! The blist / swmeta micro-benchmarks, summarised. Running `cargo bench` from inside the
//! bench would compile two more release binaries and take minutes on a small machine, so the
//! report points at each crate's own table instead (their READMEs keep the latest figures);
//! run `cargo bench -p blist` / `cargo bench -p swmeta` for fresh ones.

use crate::results::Micro;

pub fn summaries() -> Vec<Micro> {
    ["blist", "swmeta"]
        .iter()
        .map(|c| Micro {
            crate_name: (*c).to_string(),
            lines: vec![(
                format!("cargo bench -p {c}"),
                format!("see crates/{c}/README.md (not run by xtask: it would build another release binary)"),
            )],
            link: Some(format!("../../crates/{c}/README.md")),
        })
        .collect()
}
