//! device: swap areas on block devices and files — everything the pager needs to know
//! about storage, and nothing about objects or what the pages mean.
//!
//! - [`header`]: page 0 in the Linux `mkswap` layout, byte-compatible with util-linux.
//! - [`medium`]: what an area is stored on, a [`Medium`]: a local block device or file, or
//!   a remote export; opened (identity, ownership, header probe) and matched on there only.
//! - [`area`]: [`SwapArea`], an opened medium with a valid header, its counters and its
//!   [`FaultInjector`].
//! - [`engine`]: asynchronous cluster I/O with completion callbacks. Its peers, behind one
//!   interface, are io_uring or a thread pool of `pread`/`pwrite` for a local medium, and
//!   the export's own connections for a remote one.
//! - [`storage`]: what a path *is* ([`StorageId`]s: a loop device stands for its backing
//!   file too), the OFD lock that makes an area its storage's one owner, and who else uses
//!   it (the kernel's swap, a busy loop device).
//! - [`loopdev`]: attach files as loop devices (`LOOP_CONFIGURE`), detach, list.
//! - [`mkswap`](mod@mkswap): write a header, refusing devices in use or holding a filesystem.
//! - [`nbd`]: the connections to an export named by an NBD URI (`nbd://HOST/EXPORT`),
//!   through libnbd loaded at run time; they know nothing of areas or of the engine.
//! - [`fault`]: make chosen I/Os fail, for tests.
//! - [`units`]: sizes and UUIDs as text (`64M`, `1.5G`, `xxxxxxxx-xxxx-...`), and
//!   [`latency`]: the one latency histogram and its summary; both shared by every crate above.
//!
//! Invariants:
//! - Page 0 is never read or written through the data path: data I/O is confined to pages
//!   `1..=last_page`, and a request outside that range fails without doing any I/O.
//! - Bad pages listed in the header are reported by [`SwapArea::is_bad`]; the allocator
//!   (in `pager`) must never hand them out. This crate does not allocate.
//! - All I/O is whole pages from [`PageBuf`]s aligned to [`PAGE_SIZE`], so `O_DIRECT`
//!   works wherever the storage supports it.
//! - Every completion callback runs exactly once; every error names its device.
//! - Loop devices are attached through guards that detach on drop; nothing here detaches
//!   or opens exclusively a device it was not pointed at (except for an instant, to learn
//!   whether a loop device over the very file it was pointed at is in use).
//! - One owner per piece of storage: an exclusive open ([`OpenOptions::exclusive`], the
//!   default, and mkswap) holds `O_EXCL` on a block device and an OFD lock on a file or a
//!   loop device's backing file for as long as it lives; a second one is refused.
//! - A file area, or a loop device whose backing file is shorter than the area, fails every
//!   I/O that reaches past the file's end with [`DeviceError::Shrunk`] from the moment it
//!   is seen (`SwapArea::shrunk_pages`); the pages before the cut still read. The size is
//!   looked at after a failed I/O and at most every [`area::SIZE_CHECK_EVERY`] otherwise.
//!
//! Never: panic on bad input (headers are parsed from any bytes), block the caller of
//! [`Engine::submit`] for the I/O itself, or return zeroes for a read that failed.
//!
//! ```no_run
//! use std::sync::Arc;
//! use device::{Engine, EngineKind, IoOp, IoRequest, OpenOptions, PageBuf, SwapArea};
//! use device::mkswap::{mkswap, MkswapOptions};
//!
//! mkswap("/tmp/swapkit-example", &MkswapOptions { pages: Some(1024), ..Default::default() })?;
//! let area = Arc::new(SwapArea::open("/tmp/swapkit-example", &OpenOptions::default())?);
//! let engine = Engine::new(EngineKind::Auto)?;
//! let mut buf = PageBuf::new(4);
//! buf.as_mut_slice().fill(0xa5);
//! let done = engine.submit_wait(&area, IoRequest { tag: 1, op: IoOp::Write, page: 1, buf });
//! done.result?;
//! # Ok::<(), device::DeviceError>(())
//! ```

pub mod area;
pub mod buf;
pub mod engine;
mod error;
pub mod fault;
pub mod header;
pub mod latency;
pub mod loopdev;
pub mod medium;
pub mod mkswap;
pub mod nbd;
mod op;
mod stats;
pub mod storage;
mod sys;
pub mod units;

pub use area::{AreaId, AreaKind, AreaStats, DirectIo, LatencySummary, OpenOptions, SwapArea};
pub use buf::PageBuf;
pub use engine::{Engine, EngineConfig, EngineKind, IoCompletion, IoOp, IoRequest};
pub use error::{DeviceError, errno_name, with_errno};
pub use fault::FaultInjector;
pub use header::{HeaderError, SwapHeader};
pub use loopdev::{LoopDevice, LoopInfo, LoopOptions};
pub use medium::Medium;
pub use mkswap::{MkswapOptions, mkswap};
pub use storage::StorageId;

/// Bytes per page: the unit of every I/O.
pub const PAGE_SIZE: usize = 4096;

/// The most pages one cluster I/O carries in the pager (`MAX_CLUSTER`); the engine takes
/// larger ones too.
pub const MAX_CLUSTER: usize = 32;
