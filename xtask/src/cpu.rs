//! CPU time of the bench process around one phase (`getrusage(RUSAGE_SELF)`: user + system
//! seconds of every thread, the engine's and the pager's included), so each figure can say
//! what moving a GiB cost in CPU: the price of a userspace pager next to fio's own.

use std::time::Duration;

/// User + system CPU time this process has used so far.
pub fn used() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `phase` and returns its result with the CPU seconds it took.
pub fn measure<T>(phase: impl FnOnce() -> T) -> (T, f64) {
    let before = used();
    let out = phase();
    (out, used().saturating_sub(before).as_secs_f64())
}

/// CPU seconds per GiB moved; `None` when nothing moved.
pub fn per_gib(cpu_seconds: f64, bytes: u64) -> Option<f64> {
    (bytes > 0).then(|| cpu_seconds / (bytes as f64 / (1u64 << 30) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_phase_is_charged_its_cpu_and_per_gib_scales_by_bytes() {
        // A fixed amount of work (not a time): other tests' threads may add to it, never
        // take from it.
        let (x, busy) = measure(|| {
            let mut x = 0u64;
            for i in 0..50_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            x
        });
        assert!(busy > 0.0, "busy {busy} ({x})");
        assert_eq!(per_gib(2.0, 1 << 29), Some(4.0));
        assert_eq!(per_gib(1.0, 0), None);
    }
}
