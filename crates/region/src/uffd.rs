//! The userfaultfd edge: the file descriptor, its handshake and the few ioctls the region
//! uses, as `linux/userfaultfd.h` defines them (x86-64 and aarch64 share the layout).
//! Everything `unsafe` about userfaultfd lives here; callers pass page-aligned ranges that
//! lie inside the registered mapping.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::inject::{Injected, UffdFaults, Whole};

const UFFD_API: u64 = 0xAA;
const UFFD_USER_MODE_ONLY: libc::c_int = 1;

const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
const UFFDIO_UNREGISTER: libc::c_ulong = 0x8010_AA01;
const UFFDIO_WAKE: libc::c_ulong = 0x8010_AA02;
const UFFDIO_COPY: libc::c_ulong = 0xC028_AA03;
const UFFDIO_ZEROPAGE: libc::c_ulong = 0xC020_AA04;
const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xC018_AA06;
const UFFDIO_POISON: libc::c_ulong = 0xC020_AA08;
const USERFAULTFD_IOC_NEW: libc::c_ulong = 0xAA00;

const REGISTER_MODE_MISSING: u64 = 1;
const REGISTER_MODE_WP: u64 = 2;
const COPY_MODE_WP: u64 = 2;
const WRITEPROTECT_MODE_WP: u64 = 1;

/// `UFFD_FEATURE_PAGEFAULT_FLAG_WP`: write-protect faults on anonymous memory (5.7).
const FEATURE_WP: u64 = 1 << 0;
/// `UFFD_FEATURE_EVENT_REMAP`: `mremap(2)` of registered memory is told (4.11).
const FEATURE_EVENT_REMAP: u64 = 1 << 2;
/// `UFFD_FEATURE_EVENT_REMOVE`: `madvise(MADV_DONTNEED, MADV_FREE, MADV_REMOVE)` (4.11).
const FEATURE_EVENT_REMOVE: u64 = 1 << 3;
/// `UFFD_FEATURE_EVENT_UNMAP`: `munmap(2)` (4.11).
const FEATURE_EVENT_UNMAP: u64 = 1 << 6;
/// `UFFD_FEATURE_THREAD_ID`: the faulting thread's id in each message (4.14).
const FEATURE_THREAD_ID: u64 = 1 << 8;
/// `UFFD_FEATURE_POISON`: `UFFDIO_POISON` (6.6).
const FEATURE_POISON: u64 = 1 << 14;

const IOCTL_COPY: u64 = 1 << 3;
const IOCTL_ZEROPAGE: u64 = 1 << 4;
const IOCTL_WRITEPROTECT: u64 = 1 << 6;

const EVENT_PAGEFAULT: u8 = 0x12;
const EVENT_REMAP: u8 = 0x14;
const EVENT_REMOVE: u8 = 0x15;
const EVENT_UNMAP: u8 = 0x16;
const PAGEFAULT_FLAG_WRITE: u64 = 1;
const PAGEFAULT_FLAG_WP: u64 = 2;

#[repr(C)]
struct Api {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Range {
    start: u64,
    len: u64,
}

#[repr(C)]
struct Register {
    range: Range,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct Copy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

/// `uffdio_zeropage` and `uffdio_poison` share this layout.
#[repr(C)]
struct Fill {
    range: Range,
    mode: u64,
    result: i64,
}

#[repr(C)]
struct WriteProtect {
    range: Range,
    mode: u64,
}

/// One `uffd_msg` (32 bytes): the event and its three words of arguments (a page fault:
/// flags, address, and the faulting thread's id in the low half of the third; `REMAP`:
/// from, to, len; `REMOVE` and `UNMAP`: start, end).
#[repr(C)]
#[derive(Clone, Copy)]
struct Msg {
    event: u8,
    _reserved1: u8,
    _reserved2: u16,
    _reserved3: u32,
    args: [u64; 3],
}

/// A message read from the descriptor: a fault, or one of the memory events a space asks
/// for (each names the range as the program passed it, page aligned by the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    Fault(Fault),
    /// `madvise(MADV_DONTNEED, MADV_FREE, MADV_REMOVE)` on `start..end` (by any thread of
    /// the process, the space's own evictor included).
    Remove {
        start: u64,
        end: u64,
    },
    /// `munmap(2)` (or a mapping over it) of `start..end`.
    Unmap {
        start: u64,
        end: u64,
    },
    /// `mremap(2)` moved `len` bytes from `from` to `to`.
    Remap {
        from: u64,
        to: u64,
        len: u64,
    },
}

/// A page fault read from the descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    pub address: u64,
    /// A store to a write-protected page (not a missing page).
    pub wp: bool,
    /// The access was a store.
    pub write: bool,
    /// The faulting thread (its tid; 0 when the kernel does not tell).
    pub thread: u32,
}

/// What the kernel offered at the handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub poison: bool,
    /// Faults the kernel takes on the program's behalf (a `read(2)` into region memory) are
    /// served too; without it (`UFFD_USER_MODE_ONLY`) such syscalls fail with `EFAULT`.
    pub kernel_faults: bool,
}

/// `EAGAIN` from the kernel while the memory is changing: with the memory events, an event
/// that is not read yet, which no retry of the call gets past (see `fault.rs`,
/// `drain_all`). Calls that met one say so here; a handler reads its messages then.
#[derive(Debug)]
pub(crate) struct Busy {
    events: bool,
}

thread_local! {
    /// This thread met `EAGAIN` since it last asked ([`Busy::take`]).
    static SAW_EAGAIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Busy {
    /// Retries of `EAGAIN` or `EINTR` in one call: few with events (waiting does not
    /// help, reading does), more without (injected failures, a signal).
    fn max_retries(&self) -> u32 {
        if self.events { 4 } else { MAX_RETRIES }
    }

    fn saw(&self, e: &io::Error) {
        if e.raw_os_error() == Some(libc::EAGAIN) {
            SAW_EAGAIN.with(|s| s.set(true));
            std::thread::yield_now();
        }
    }

    /// Whether this thread met `EAGAIN` since it last asked (per thread: a handler asks
    /// about its own calls).
    pub fn take(&self) -> bool {
        SAW_EAGAIN.with(|s| s.replace(false))
    }

    /// As [`Busy::take`], leaving the answer for the next asker.
    pub fn peek(&self) -> bool {
        SAW_EAGAIN.with(|s| s.get())
    }
}

/// A userfaultfd: non-blocking, close-on-exec.
#[derive(Debug)]
pub(crate) struct Uffd {
    fd: OwnedFd,
    pub caps: Caps,
    pub busy: Busy,
    /// Failures to inject, for tests (see `inject.rs`).
    faults: Option<Arc<UffdFaults>>,
}

/// What a ranged call did: its first `done` bytes took effect, and `error` says why it
/// stopped short of the whole range (`None`: it did all of it).
#[derive(Debug)]
pub(crate) struct Outcome {
    pub done: u64,
    pub error: Option<io::Error>,
}

impl Outcome {
    fn complete(len: u64) -> Outcome {
        Outcome {
            done: len,
            error: None,
        }
    }

    /// Whole pages done.
    pub fn pages(&self) -> u64 {
        self.done / PAGE
    }
}

/// How often `EAGAIN`/`EINTR` is retried in one call before it is reported. The kernel
/// answers `EAGAIN` while the address space is changing under it; a bound keeps a storm
/// of them from spinning a handler for ever (the caller then retries the fault).
const MAX_RETRIES: u32 = 64;
const PAGE: u64 = device::PAGE_SIZE as u64;

/// A new descriptor: `/dev/userfaultfd` first (it obeys the device's permissions, not
/// `vm.unprivileged_userfaultfd`), then the syscall; full mode first, user-mode-only if
/// refused.
fn open_raw() -> io::Result<(OwnedFd, bool)> {
    let mut last = io::Error::from_raw_os_error(libc::ENOSYS);
    for user_only in [false, true] {
        let flags =
            libc::O_CLOEXEC | libc::O_NONBLOCK | if user_only { UFFD_USER_MODE_ONLY } else { 0 };
        if let Ok(dev) = std::fs::File::open("/dev/userfaultfd") {
            // SAFETY: USERFAULTFD_IOC_NEW takes its flags by value and returns a new fd.
            let fd = unsafe { libc::ioctl(dev.as_raw_fd(), USERFAULTFD_IOC_NEW, flags) };
            if fd >= 0 {
                // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
                return Ok((unsafe { OwnedFd::from_raw_fd(fd) }, !user_only));
            }
        }
        // SAFETY: userfaultfd(2) takes flags by value and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
        if fd >= 0 {
            // SAFETY: as above; the value fits a RawFd since it came from the kernel as one.
            return Ok((unsafe { OwnedFd::from_raw_fd(fd as RawFd) }, !user_only));
        }
        last = io::Error::last_os_error();
    }
    Err(last)
}

fn api(fd: &OwnedFd, features: u64) -> io::Result<Api> {
    let mut a = Api {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    // SAFETY: UFFDIO_API reads and writes one `uffdio_api`, which `a` is.
    if unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_API, &mut a) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(a)
}

impl Uffd {
    /// Opens a descriptor with write-protect faults (required) and poison (if offered).
    /// The handshake is done on a probe descriptor first: a descriptor takes `UFFDIO_API`
    /// only once, and the features must be asked for in that one call.
    pub fn open(faults: Option<Arc<UffdFaults>>, events: bool) -> io::Result<Uffd> {
        let (probe, _) = open_raw()?;
        let offered = api(&probe, 0)?.features;
        drop(probe);
        if offered & FEATURE_WP == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel has no userfaultfd write-protect for anonymous memory (needs 5.7)",
            ));
        }
        let (fd, kernel_faults) = open_raw()?;
        let mut want = FEATURE_WP | (offered & (FEATURE_POISON | FEATURE_THREAD_ID));
        if events {
            let need = FEATURE_EVENT_REMAP | FEATURE_EVENT_REMOVE | FEATURE_EVENT_UNMAP;
            if offered & need != need {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the kernel has no userfaultfd events for munmap, mremap and madvise",
                ));
            }
            want |= need;
        }
        api(&fd, want)?;
        Ok(Uffd {
            fd,
            caps: Caps {
                poison: want & FEATURE_POISON != 0,
                kernel_faults,
            },
            busy: Busy { events },
            faults,
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Registers `[start, start+len)` for missing and write-protect faults; checks that
    /// copy, zeropage and writeprotect are allowed there.
    pub fn register(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = Register {
            range: Range { start, len },
            mode: REGISTER_MODE_MISSING | REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads and writes one `uffdio_register`.
        if unsafe { libc::ioctl(self.raw(), UFFDIO_REGISTER, &mut r) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let need = IOCTL_COPY | IOCTL_ZEROPAGE | IOCTL_WRITEPROTECT;
        if r.ioctls & need != need {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "userfaultfd range lacks UFFDIO_COPY, UFFDIO_ZEROPAGE or UFFDIO_WRITEPROTECT",
            ));
        }
        Ok(())
    }

    pub fn unregister(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = Range { start, len };
        // SAFETY: UFFDIO_UNREGISTER reads one `uffdio_range`.
        if unsafe { libc::ioctl(self.raw(), UFFDIO_UNREGISTER, &mut r) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads up to `max` (at most 16) of the messages waiting now (none if there are none).
    pub fn read_messages(&self, out: &mut Vec<Message>, max: usize) -> io::Result<()> {
        if self.faults.as_ref().is_some_and(|f| f.read_fails()) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let mut msgs = [Msg {
            event: 0,
            _reserved1: 0,
            _reserved2: 0,
            _reserved3: 0,
            args: [0; 3],
        }; 16];
        let size = std::mem::size_of::<Msg>() * max.clamp(1, msgs.len());
        // SAFETY: the kernel writes whole `uffd_msg`s, at most `size` bytes (no more than
        // `msgs` holds), into `msgs`.
        let n = unsafe { libc::read(self.raw(), msgs.as_mut_ptr().cast(), size) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                return Ok(());
            }
            return Err(e);
        }
        let count = n as usize / std::mem::size_of::<Msg>();
        for m in &msgs[..count] {
            let [a, b, c] = m.args;
            out.push(match m.event {
                EVENT_PAGEFAULT => Message::Fault(Fault {
                    address: b,
                    wp: a & PAGEFAULT_FLAG_WP != 0,
                    write: a & PAGEFAULT_FLAG_WRITE != 0,
                    thread: c as u32,
                }),
                EVENT_REMAP => Message::Remap {
                    from: a,
                    to: b,
                    len: c,
                },
                EVENT_REMOVE => Message::Remove { start: a, end: b },
                EVENT_UNMAP => Message::Unmap { start: a, end: b },
                _ => continue,
            });
        }
        Ok(())
    }

    /// Installs `len` bytes from `src` at `dst`, write-protected if `wp`, and wakes the threads
    /// waiting there. Reports exactly how many bytes were mapped: a copy can stop part
    /// way (`ENOMEM`, or `EEXIST` where a page is mapped already), and the pages before
    /// that point are mapped all the same. `EAGAIN` and `EINTR` are retried from where
    /// the copy stopped.
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes; `dst..dst+len` must be inside the registered
    /// range and page aligned.
    pub unsafe fn copy(&self, dst: u64, src: *const u8, len: u64, wp: bool) -> Outcome {
        ranged(len, &self.busy, |done| {
            let want = len - done;
            let injected = match &self.faults {
                Some(f) => f.copy(want / PAGE),
                None => Injected::None,
            };
            let (ask, fake) = match injected {
                Injected::None => (want, None),
                Injected::Partial { pages, errno } => (pages * PAGE, Some(errno)),
            };
            let (copied, error) = if ask > 0 {
                // SAFETY: a sub-range of what the caller vouched for.
                unsafe { self.copy_once(dst + done, src.wrapping_add(done as usize), ask, wp) }
            } else {
                (0, None)
            };
            (copied, error.or(fake.map(io::Error::from_raw_os_error)))
        })
    }

    /// One `UFFDIO_COPY`: the bytes it copied, and its error if it stopped short.
    ///
    /// # Safety
    /// As [`Uffd::copy`].
    unsafe fn copy_once(
        &self,
        dst: u64,
        src: *const u8,
        len: u64,
        wp: bool,
    ) -> (u64, Option<io::Error>) {
        let mut c = Copy {
            dst,
            src: src as u64,
            len,
            mode: if wp { COPY_MODE_WP } else { 0 },
            copy: 0,
        };
        // SAFETY: UFFDIO_COPY reads and writes one `uffdio_copy`; the caller vouches for
        // the ranges.
        let rc = unsafe { libc::ioctl(self.raw(), UFFDIO_COPY, &mut c) };
        let copied = if c.copy > 0 { c.copy as u64 } else { 0 };
        if rc < 0 {
            return (copied, Some(io::Error::last_os_error()));
        }
        (copied.max(len), None)
    }

    /// Maps the zero page at `[start, start+len)` and wakes the waiters; reports how much
    /// was mapped, as [`Uffd::copy`].
    pub fn zeropage(&self, start: u64, len: u64) -> Outcome {
        self.fill(UFFDIO_ZEROPAGE, Whole::Zeropage, start, len)
    }

    /// Marks `[start, start+len)` poisoned: every access there gets `SIGBUS` (6.6+).
    /// Reports how much was poisoned.
    pub fn poison(&self, start: u64, len: u64) -> Outcome {
        self.fill(UFFDIO_POISON, Whole::Poison, start, len)
    }

    fn fill(&self, op: libc::c_ulong, which: Whole, start: u64, len: u64) -> Outcome {
        ranged(len, &self.busy, |done| {
            match self.faults.as_ref().and_then(|f| f.whole(which)) {
                Some(errno) => (0, Some(io::Error::from_raw_os_error(errno))),
                None => self.fill_once(op, start + done, len - done),
            }
        })
    }

    fn fill_once(&self, op: libc::c_ulong, start: u64, len: u64) -> (u64, Option<io::Error>) {
        let mut z = Fill {
            range: Range { start, len },
            mode: 0,
            result: 0,
        };
        // SAFETY: UFFDIO_ZEROPAGE and UFFDIO_POISON read and write one struct of this
        // layout; they only touch page tables of the registered range.
        let rc = unsafe { libc::ioctl(self.raw(), op, &mut z) };
        let did = if z.result > 0 { z.result as u64 } else { 0 };
        if rc < 0 {
            return (did, Some(io::Error::last_os_error()));
        }
        (did.max(len), None)
    }

    /// Write-protects (`protect`) or unprotects `[start, start+len)`. Unprotecting wakes
    /// the threads waiting on a write-protect fault there. The kernel says nothing of a
    /// range done part way: on an error the caller must take none of it as done (a page
    /// that is in fact protected then costs one more write-protect fault, never a store).
    pub fn write_protect(&self, start: u64, len: u64, protect: bool) -> io::Result<()> {
        let mut w = WriteProtect {
            range: Range { start, len },
            mode: if protect { WRITEPROTECT_MODE_WP } else { 0 },
        };
        let mut retries = 0;
        loop {
            let injected = self
                .faults
                .as_ref()
                .and_then(|f| f.whole(Whole::WriteProtect));
            let e = match injected {
                Some(errno) => io::Error::from_raw_os_error(errno),
                // SAFETY: UFFDIO_WRITEPROTECT reads one `uffdio_writeprotect`.
                None if unsafe { libc::ioctl(self.raw(), UFFDIO_WRITEPROTECT, &mut w) } >= 0 => {
                    return Ok(());
                }
                None => io::Error::last_os_error(),
            };
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) if retries < self.busy.max_retries() => {
                    retries += 1;
                    self.busy.saw(&e);
                }
                _ => {
                    if e.raw_os_error() == Some(libc::EAGAIN) {
                        self.busy.saw(&e);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Wakes the threads waiting on a fault in `[start, start+len)` (they retry the access).
    pub fn wake(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = Range { start, len };
        // SAFETY: UFFDIO_WAKE reads one `uffdio_range`.
        if unsafe { libc::ioctl(self.raw(), UFFDIO_WAKE, &mut r) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Drives a ranged call over `len` bytes: `once(done)` does what it can from `done` on and
/// says how much it did and why it stopped; `EAGAIN` and `EINTR` are retried from there (at
/// most [`MAX_RETRIES`] times), any other error ends it. Reports exactly what was done.
fn ranged(len: u64, busy: &Busy, mut once: impl FnMut(u64) -> (u64, Option<io::Error>)) -> Outcome {
    let mut done = 0;
    let mut retries = 0;
    while done < len {
        let (did, error) = once(done);
        done += did;
        let Some(e) = error else { continue };
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) if retries < busy.max_retries() => {
                retries += 1;
                busy.saw(&e);
            }
            _ => {
                busy.saw(&e);
                return Outcome {
                    done,
                    error: Some(e),
                };
            }
        }
    }
    Outcome::complete(len)
}

/// Sends `SIGBUS` to thread `tid` of this process: how a fault that cannot be served
/// (its wait for swap timed out, or its page could not be poisoned) ends in the faulting
/// thread, which the kernel names in the fault message (`UFFD_FEATURE_THREAD_ID`). The
/// thread is blocked in the fault; the signal interrupts that wait and is delivered
/// before the access is tried again. Returns whether it was sent (`tid` 0: unknown).
pub(crate) fn sigbus_thread(tid: u32) -> bool {
    if tid == 0 {
        return false;
    }
    // SAFETY: tgkill(2) with plain integers; it only signals a thread of our own process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            tid as libc::pid_t,
            libc::SIGBUS,
        )
    };
    rc == 0
}
