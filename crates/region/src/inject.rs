//! Fault injection at the userfaultfd edge, for tests: every kernel call the region makes
//! on its memory (`UFFDIO_COPY`, `UFFDIO_ZEROPAGE`, `UFFDIO_POISON`, `UFFDIO_WRITEPROTECT`,
//! `madvise(MADV_DONTNEED)`, `mprotect`) and the reads of fault messages can be made to
//! fail the way the kernel may make them fail, so the tests can show that the page table
//! never disagrees with the kernel and that no fault hangs.
//!
//! An injected failure is a real partial call, never a lie about the memory: a copy that
//! "fails with `ENOMEM` part way" really copies its first pages and stops; an injected
//! `EEXIST` really stops part way (the page it names is not mapped, which the region must
//! cope with exactly as with a real `EEXIST`: it zaps the page and counts it unmapped).
//!
//! Pass one to [`crate::Region::with_injector`]. It costs one relaxed load per kernel call
//! when unused, as `device`'s `FaultInjector` does.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How a ranged kernel call is made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    /// The call goes through.
    None,
    /// It does `pages` of its pages, then fails with `errno`.
    Partial { pages: u64, errno: i32 },
}

/// Probabilities (in parts per million of calls) of each failure, and a seed: see the
/// module doc. Thread-safe; shared by the region's threads.
#[derive(Debug, Default)]
pub struct UffdFaults {
    /// `UFFDIO_COPY` stops part way with `ENOMEM`.
    pub copy_enomem: AtomicU32,
    /// `UFFDIO_COPY` stops part way with `EEXIST`.
    pub copy_eexist: AtomicU32,
    /// A call stops part way with `EAGAIN` (the region retries the rest).
    pub eagain: AtomicU32,
    /// A call fails at once with `EINTR` (the region retries it).
    pub eintr: AtomicU32,
    /// `UFFDIO_ZEROPAGE` fails with `ENOMEM`.
    pub zeropage_enomem: AtomicU32,
    /// `UFFDIO_WRITEPROTECT` fails with `ENOMEM` (either way: protect or unprotect).
    pub writeprotect_enomem: AtomicU32,
    /// `UFFDIO_POISON` and its `mprotect` fallback fail with `ENOMEM`.
    pub poison_fails: AtomicU32,
    /// `madvise(MADV_DONTNEED)` fails with `EAGAIN`.
    pub dontneed_fails: AtomicU32,
    /// Reads of fault messages fail with `EIO` (every one while set: a dead descriptor).
    pub reads_fail: std::sync::atomic::AtomicBool,
    /// Failures injected so far, all kinds.
    pub injected: AtomicU64,
    rng: AtomicU64,
}

/// Parts per million: `1_000_000` makes every call fail.
pub const ALWAYS: u32 = 1_000_000;

impl UffdFaults {
    /// No failures yet; `seed` drives which calls fail.
    pub fn new(seed: u64) -> UffdFaults {
        let f = UffdFaults::default();
        f.rng.store(seed | 1, Ordering::Relaxed);
        f
    }

    /// Every kind of ranged failure at `ppm` parts per million (reads stay good).
    pub fn all(seed: u64, ppm: u32) -> UffdFaults {
        let f = UffdFaults::new(seed);
        for k in [
            &f.copy_enomem,
            &f.copy_eexist,
            &f.eagain,
            &f.eintr,
            &f.zeropage_enomem,
            &f.writeprotect_enomem,
            &f.poison_fails,
            &f.dontneed_fails,
        ] {
            k.store(ppm, Ordering::Relaxed);
        }
        f
    }

    /// A step of xorshift64* over the shared state: cheap, and good enough to spread
    /// failures over calls (which call fails also depends on thread timing).
    fn next(&self) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn hit(&self, ppm: &AtomicU32) -> bool {
        let p = ppm.load(Ordering::Relaxed);
        if p == 0 {
            return false;
        }
        let hit = self.next() % u64::from(ALWAYS) < u64::from(p);
        if hit {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Part of `pages` (0 to all but one): where a partial failure stops.
    fn part(&self, pages: u64) -> u64 {
        if pages <= 1 { 0 } else { self.next() % pages }
    }

    /// What a `UFFDIO_COPY` of `pages` pages does.
    pub(crate) fn copy(&self, pages: u64) -> Injected {
        for (kind, errno) in [
            (&self.eintr, libc::EINTR),
            (&self.copy_enomem, libc::ENOMEM),
            (&self.copy_eexist, libc::EEXIST),
            (&self.eagain, libc::EAGAIN),
        ] {
            if self.hit(kind) {
                let pages = if errno == libc::EINTR {
                    0
                } else {
                    self.part(pages)
                };
                return Injected::Partial { pages, errno };
            }
        }
        Injected::None
    }

    /// Whether a whole-range call of kind `which` fails, and with which errno.
    pub(crate) fn whole(&self, which: Whole) -> Option<i32> {
        if self.hit(&self.eintr) {
            return Some(libc::EINTR);
        }
        let (kind, errno) = match which {
            Whole::Zeropage => (&self.zeropage_enomem, libc::ENOMEM),
            Whole::WriteProtect => (&self.writeprotect_enomem, libc::ENOMEM),
            Whole::Poison => (&self.poison_fails, libc::ENOMEM),
            Whole::DontNeed => (&self.dontneed_fails, libc::EAGAIN),
        };
        self.hit(kind).then_some(errno)
    }

    pub(crate) fn read_fails(&self) -> bool {
        self.reads_fail.load(Ordering::Relaxed)
    }
}

/// The calls [`UffdFaults::whole`] can fail.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Whole {
    Zeropage,
    WriteProtect,
    Poison,
    DontNeed,
}
