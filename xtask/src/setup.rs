//! The bench's devices: a scratch directory, backing files filled with non-zero data, loop
//! devices on them (or the plain files where loop devices are unavailable), a swap header on
//! each. [`Workbench`] owns all of it and takes it down on drop, in reverse order: loop devices
//! detached first, then the files, then the directory.
//!
//! It never touches anything it did not create: the directory is always a fresh
//! `swapkit-bench-*` one (inside `--dir` when given), and only our own [`LoopDevice`] guards
//! detach. Loop devices are attached with autoclear, so even a killed process leaves none.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use device::loopdev::{self, LoopDevice, LoopOptions};
use device::mkswap::{MkswapOptions, mkswap};

use crate::cancel;
use crate::error::Error;
use crate::progress::Progress;
use crate::results::DeviceInfo;

/// Loop devices or plain files, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Loop,
    Files { why: String },
}

/// One swap area of the bench: its path (a loop device or the file itself) and its backing.
#[derive(Debug)]
pub struct Slot {
    pub path: PathBuf,
    pub backing: PathBuf,
    pub size: u64,
    loopdev: Option<LoopDevice>,
}

#[derive(Debug)]
pub struct Workbench {
    pub mode: Mode,
    pub dir: PathBuf,
    pub slots: Vec<Slot>,
    /// A forced exit removes `dir` (our devices go with the process: autoclear).
    _forced_exit: cancel::OnForcedExit,
}

/// What `Workbench::create` needs.
#[derive(Debug, Clone)]
pub struct Want {
    pub devices: u32,
    pub size: u64,
    pub parent: Option<PathBuf>,
    pub force_files: bool,
    /// Prefix of the directory name: `swapkit-bench` or `swapkit-demo`.
    pub tag: &'static str,
}

impl Workbench {
    /// Create the directory and the backing files, fill them, attach and mkswap.
    ///
    /// On any error or Ctrl-C part-way, what was already made is dropped (and so removed)
    /// before the error returns.
    pub fn create(want: &Want) -> Result<Workbench, Error> {
        let size = want.size - want.size % device::PAGE_SIZE as u64;
        if size < 64 * device::PAGE_SIZE as u64 {
            return Err(Error::Setup(format!(
                "--size {}: too small; a device needs at least 256 KiB",
                want.size
            )));
        }
        let mode = if want.force_files {
            Mode::Files {
                why: "--files given".into(),
            }
        } else {
            match loopdev::available() {
                Ok(()) => Mode::Loop,
                Err(why) => Mode::Files { why },
            }
        };
        match &mode {
            Mode::Loop => eprintln!("  loop devices: direct I/O, 4096-byte blocks, autoclear"),
            Mode::Files { why } => eprintln!("  NOTE: plain files, NOT loop devices: {why}"),
        }
        let dir = scratch_dir(want.parent.as_deref(), want.tag)?;
        let forced = {
            let dir = dir.clone();
            cancel::on_forced_exit(move || {
                let _ = std::fs::remove_dir_all(&dir);
            })
        };
        let mut wb = Workbench {
            mode,
            dir,
            slots: Vec::new(),
            _forced_exit: forced,
        };
        let total = size * want.devices as u64;
        let progress = Progress::start("filling backing files", total);
        for i in 0..want.devices {
            let backing = wb.dir.join(format!("{}-{i}.img", want.tag));
            fill(&backing, size, &progress)?;
            wb.slots.push(Slot {
                path: backing.clone(),
                backing,
                size,
                loopdev: None,
            });
        }
        progress.finish(&format!(
            "{} × {} of non-zero data",
            want.devices,
            device::units::human_iec(size)
        ));
        // Let the file system finish writing back before anything is measured.
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        std::thread::sleep(std::time::Duration::from_secs(1));
        if wb.mode == Mode::Loop {
            wb.attach_all()?;
        }
        for (i, s) in wb.slots.iter().enumerate() {
            cancel::check()?;
            mkswap(
                &s.path,
                &MkswapOptions {
                    label: Some(format!("swapkit{i}")),
                    force: true,
                    ..MkswapOptions::default()
                },
            )?;
        }
        Ok(wb)
    }

    /// Attach every backing file; on the first failure fall back to files for all, and say why.
    fn attach_all(&mut self) -> Result<(), Error> {
        let opts = LoopOptions {
            direct_io: true,
            block_size: 4096,
            autoclear: true,
            read_only: false,
        };
        for i in 0..self.slots.len() {
            cancel::check()?;
            match LoopDevice::attach(&self.slots[i].backing, &opts) {
                Ok(dev) => {
                    self.slots[i].path = dev.path().to_path_buf();
                    self.slots[i].loopdev = Some(dev);
                }
                Err(e) => {
                    for s in &mut self.slots {
                        s.loopdev = None;
                        s.path = s.backing.clone();
                    }
                    let why = format!("attaching a loop device failed: {e}");
                    eprintln!("  NOTE: falling back to plain files: {why}");
                    self.mode = Mode::Files { why };
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.slots.iter().map(|s| s.path.clone()).collect()
    }

    pub fn info(&self) -> Vec<DeviceInfo> {
        self.slots
            .iter()
            .map(|s| DeviceInfo {
                path: s.path.display().to_string(),
                backing_file: s.backing.display().to_string(),
                size_bytes: s.size,
                direct_io: s.loopdev.is_some(),
            })
            .collect()
    }
}

impl Drop for Workbench {
    fn drop(&mut self) {
        // Detaching a device someone still holds only marks it for autoclear; wait for the
        // pager's and engine's deferred closes first, so the devices are gone when we return.
        wait_all_free(&self.paths());
        for s in self.slots.iter_mut().rev() {
            if let Some(dev) = s.loopdev.take() {
                let path = dev.path().to_path_buf();
                if let Err(e) = dev.detach() {
                    eprintln!("xtask: detaching {}: {e}", path.display());
                }
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("xtask: removing {}: {e}", self.dir.display());
        }
    }
}

/// A fresh `<tag>-<pid>-<n>` directory under `parent` (default: the system temp dir).
fn scratch_dir(parent: Option<&Path>, tag: &str) -> Result<PathBuf, Error> {
    let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
    for n in 0..100u32 {
        let dir = parent.join(format!("{tag}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("creating", dir, e)),
        }
    }
    Err(Error::Setup(format!(
        "cannot find a free {tag}-* directory name in {}",
        parent.display()
    )))
}

/// Write `size` bytes of a non-zero pattern and sync, so the file system has allocated every
/// block and the first measured writes do not pay for allocation (or hit a sparse hole).
fn fill(path: &Path, size: u64, progress: &Progress) -> Result<(), Error> {
    const CHUNK: usize = 1 << 20;
    let mut f = File::create(path).map_err(|e| Error::io("creating", path, e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size;
    for b in buf.chunks_mut(8) {
        // xorshift64: cheap, never zero, not compressible by a clever backing store.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    let mut left = size;
    while left > 0 {
        cancel::check()?;
        let n = left.min(CHUNK as u64) as usize;
        f.write_all(&buf[..n])
            .map_err(|e| Error::io("writing", path, e))?;
        left -= n as u64;
        progress.add(n as u64);
    }
    f.sync_all().map_err(|e| Error::io("syncing", path, e))?;
    Ok(())
}

/// Wait (up to `limit`) until no one holds the block device at `path` open exclusively.
///
/// Dropping a pager or an engine does not free its devices at once: an io_uring ring keeps
/// its registered files until the kernel's deferred ring teardown runs. A block device is
/// free when we can open it with `O_EXCL` ourselves (and close it again). Plain files have
/// no such lock: they return at once. Returns whether the device is free.
pub fn wait_free(path: &Path, limit: std::time::Duration) -> bool {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let is_block = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
    if !is_block {
        return true;
    }
    let start = std::time::Instant::now();
    loop {
        let free = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
            .is_ok();
        if free || start.elapsed() >= limit {
            return free;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// [`wait_free`] for every path, with one shared deadline.
pub fn wait_all_free(paths: &[PathBuf]) {
    let limit = std::time::Duration::from_secs(5);
    for p in paths {
        wait_free(p, limit);
    }
}
