//! What can go wrong when a region is made.

/// The errors of [`crate::Region::new`] and of a [`crate::Space`].
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The configuration cannot work (zero length, a limit below two pages, ...).
    #[error("region config: {0}")]
    Config(String),
    /// The anonymous mapping could not be made.
    #[error("mapping {len} bytes for a region: {source}")]
    Map {
        len: u64,
        #[source]
        source: std::io::Error,
    },
    /// No userfaultfd: not allowed (`vm.unprivileged_userfaultfd`, `/dev/userfaultfd`
    /// permissions) or the kernel lacks write-protect faults.
    #[error("userfaultfd {what}: {source}")]
    Userfaultfd {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The pager's free swap cannot hold what of the region does not fit under its limit
    /// (see `RegionConfig::overcommit`).
    #[error(
        "not enough free swap for the region: {need} pages ({} MiB) may be swapped out, \
         {free} pages ({} MiB) are free (add swap, raise resident_limit, or set overcommit)",
        need / 256,
        free / 256
    )]
    NotEnoughSwap { need: u64, free: u64 },
    /// [`crate::Region::with_temp_swap`] could not make its swap file.
    #[error("making the swap file {path}: {source}", path = path.display())]
    TempSwap {
        path: std::path::PathBuf,
        #[source]
        source: device::DeviceError,
    },
    /// The pager would not give an object.
    #[error("pager object for a region: {0}")]
    Pager(#[from] pager::PagerError),
    /// A fault handler could not be set up (its epoll instance: the descriptor table may
    /// be full); a region without its handlers would hang its first fault.
    #[error("setting up fault handler {index} of a region: {source}")]
    Handler {
        index: usize,
        #[source]
        source: std::io::Error,
    },
    /// [`crate::Region::verify`] found the page table disagreeing with the kernel's.
    #[error(
        "{pages} pages disagree with the kernel, the first page {page}: the region holds it \
         {state}, the kernel {}",
        if *present { "has it in memory" } else { "does not" }
    )]
    Disagrees {
        pages: u64,
        page: u64,
        state: String,
        present: bool,
    },
    /// [`crate::Region::verify`] found the resident count disagreeing with the page states.
    #[error(
        "the region counts {counted} pages resident but {states} pages are in a resident state"
    )]
    Miscounted { counted: u64, states: u64 },
    /// Memory could not be adopted by a space ([`crate::Space::adopt`]): not page aligned,
    /// not this process's memory, or a call on it failed.
    #[error("adopting {len} bytes at {addr:#x}: {what}: {source}")]
    Adopt {
        addr: u64,
        len: u64,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A handler thread could not be started.
    #[error("starting a region thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Pages [`crate::Space::prepare_fork`] could not bring in: a child forked now reads them
/// as zeroes (or the other bytes its memory has there), not as the parent's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} pages could not be read in before fork (the first at {:#x}): a child would not see them",
    addrs.len(),
    addrs.first().copied().unwrap_or(0)
)]
pub struct ForkError {
    /// The pages' addresses.
    pub addrs: Vec<u64>,
}
