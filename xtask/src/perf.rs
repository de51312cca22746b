//! Profiling one workload of the bench with `perf record`, and nothing else of the run.
//!
//! `perf record --control fifo:CTL,ACK -D -1` starts with its events disabled and obeys
//! `enable` / `disable` written to the fifo `CTL`, answering `ack` on `ACK`. With
//! `SWAPKIT_PERF_CTL=CTL`, `SWAPKIT_PERF_ACK=ACK` and `SWAPKIT_PERF_PHASE=<workload id>`
//! in its environment, the bench enables the events for each repetition of that pager
//! workload only ([`during`]): the raw, fio and other phases around it stay out of the
//! profile. Without them [`during`] only runs the phase. `benchmarks/README.md` has the
//! commands.

use std::io::{BufRead, BufReader, Write};

/// Runs `phase` (the pager workload `id`) with perf's events enabled when the environment
/// names `id` (see the module documentation). A fifo that cannot be used is said once on
/// stderr and the phase runs unprofiled: a profile is never a reason to fail a run.
pub fn during<T>(id: &str, phase: impl FnOnce() -> T) -> T {
    let wanted = std::env::var("SWAPKIT_PERF_PHASE").is_ok_and(|p| p == id);
    let ctl = std::env::var_os("SWAPKIT_PERF_CTL");
    let (true, Some(ctl)) = (wanted, ctl) else {
        return phase();
    };
    let ack = std::env::var_os("SWAPKIT_PERF_ACK");
    let send = |cmd: &str| -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&ctl)?
            .write_all(format!("{cmd}\n").as_bytes())?;
        // Wait for perf's `ack`, so no sample of the phase is lost to a slow reader.
        if let Some(ack) = &ack {
            let mut line = String::new();
            BufReader::new(std::fs::File::open(ack)?).read_line(&mut line)?;
        }
        Ok(())
    };
    if let Err(e) = send("enable") {
        eprintln!(
            "  perf: cannot enable through {}: {e}",
            ctl.to_string_lossy()
        );
        return phase();
    }
    let out = phase();
    if let Err(e) = send("disable") {
        eprintln!(
            "  perf: cannot disable through {}: {e}",
            ctl.to_string_lossy()
        );
    }
    out
}
