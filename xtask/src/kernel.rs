//! `--kernel-baseline` (root only): the Linux kernel's own swap on the same loop devices.
//!
//! `mkswap` (ours, util-linux compatible) and `swapon(2)` on every device at one priority (so
//! the kernel stripes over them, as our interleave does), a memory cgroup that caps a child
//! process well below its data (v1 `memory.limit_in_bytes` or v2 `memory.max`, whichever the
//! machine has), and the child (`xtask kernel-child`) writes N pages of non-zero data, then
//! reads them back in order. Then the limit is lifted and the first device is swapped off,
//! timed: the kernel's swapoff next to ours.
//!
//! Everything is restored by guards, in reverse: the child killed, `swapoff(2)` of every
//! device we swapped on (only those), the cgroup removed. A forced exit (second Ctrl-C) still
//! swaps our devices off (each `swapon` registers its `swapoff` with `cancel::on_forced_exit`).

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use device::units::human_iec;

use crate::cancel;
use crate::error::Error;
use crate::results::Figure;

const PAGE: u64 = device::PAGE_SIZE as u64;
const SWAP_FLAG_PREFER: libc::c_int = 0x8000;

/// What the kernel run measured.
#[derive(Debug)]
pub struct Kernel {
    pub figures: Vec<Figure>,
}

/// Run it; `data_bytes` is what the child writes, `limit_bytes` its memory cap.
///
/// The read back uses `readers` threads, each reading its own contiguous share in order:
/// the thread count of the pager's `pagein-seq` it is compared with.
pub fn run(
    paths: &[PathBuf],
    data_bytes: u64,
    limit_bytes: u64,
    readers: u32,
) -> Result<Kernel, Error> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::skipped(
            "kernel-baseline",
            "needs root (swapon and cgroups)",
        ));
    }
    let mut swap = KernelSwap::on_all(paths)?;
    let cg = Cgroup::create(limit_bytes)?;
    let mut child = KernelChild::spawn(data_bytes / PAGE)?;
    cg.add(child.pid())?;
    let pswpin0 = vmstat("pswpin");
    let write_ns = child.step("go", "written")?;
    let pswpin1 = vmstat("pswpin");
    let read_ns = child.step(&format!("read {}", readers.max(1)), "read")?;
    let pswpin2 = vmstat("pswpin");
    let swapped_in = (pswpin2 - pswpin1.min(pswpin2)) * PAGE;
    let _ = pswpin0;

    // Let swapoff bring the pages back into memory without tripping the limit.
    cg.unlimit()?;
    let victim = &paths[0];
    let used = swap_used_bytes(victim);
    let start = Instant::now();
    swap.off(victim)?;
    let swapoff_s = start.elapsed().as_secs_f64();
    drop(child);
    drop(cg);
    drop(swap);

    let secs = |ns: u64| ns as f64 / 1e9;
    Ok(Kernel {
        figures: vec![
            Figure::new(
                "kernel-pageout",
                format!(
                    "a process in a {} memory cgroup writes {}",
                    human_iec(limit_bytes),
                    human_iec(data_bytes)
                ),
                data_bytes,
                data_bytes / PAGE,
                secs(write_ns),
            ),
            Figure::new(
                "kernel-pagein-seq",
                format!(
                    "the same process reads its pages back in order, {readers} threads each \
                     on its own share (bytes: pages swapped in)"
                ),
                swapped_in,
                swapped_in / PAGE,
                secs(read_ns),
            )
            .with_shape(readers.max(1), 1),
            Figure::new(
                "kernel-swapoff",
                format!(
                    "swapoff(2) of {} holding {}",
                    victim.display(),
                    human_iec(used)
                ),
                used,
                used / PAGE,
                swapoff_s,
            ),
        ],
    })
}

/// `pswpin` and friends from /proc/vmstat; 0 when unreadable.
fn vmstat(key: &str) -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes of swap in use on `dev`, from /proc/swaps (KiB there).
fn swap_used_bytes(dev: &Path) -> u64 {
    let want = std::fs::canonicalize(dev).unwrap_or_else(|_| dev.to_path_buf());
    std::fs::read_to_string("/proc/swaps")
        .ok()
        .and_then(|t| {
            t.lines().skip(1).find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4 && Path::new(f[0]) == want).then(|| f[3].parse::<u64>().ok())?
            })
        })
        .unwrap_or(0)
        * 1024
}

/// The devices we swapped on; swapped off again on drop (or by a forced exit).
#[derive(Debug, Default)]
pub(crate) struct KernelSwap {
    on: Vec<(PathBuf, cancel::OnForcedExit)>,
}

fn cpath(p: &Path) -> Result<CString, Error> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Setup(format!("{}: path has a NUL byte", p.display())))
}

impl KernelSwap {
    /// A fresh swap header on every device of `paths` and `swapon(2)` of each, all at one
    /// priority (the kernel stripes over them).
    pub(crate) fn on_all(paths: &[PathBuf]) -> Result<KernelSwap, Error> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::skipped(
                "kernel swap",
                "needs root (swapon and cgroups)",
            ));
        }
        // The pager's last devices may still be closing (see `setup::wait_free`).
        crate::setup::wait_all_free(paths);
        for p in paths {
            device::mkswap(
                p,
                &device::MkswapOptions {
                    force: true,
                    ..Default::default()
                },
            )?;
        }
        let mut swap = KernelSwap::default();
        for p in paths {
            swap.on(p)?;
        }
        Ok(swap)
    }

    fn on(&mut self, p: &Path) -> Result<(), Error> {
        let c = cpath(p)?;
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        let rc = unsafe { libc::swapon(c.as_ptr(), SWAP_FLAG_PREFER | 10) };
        if rc != 0 {
            return Err(Error::io("swapon", p, std::io::Error::last_os_error()));
        }
        let forced = {
            let p = p.to_path_buf();
            cancel::on_forced_exit(move || {
                let _ = swapoff(&p);
            })
        };
        self.on.push((p.to_path_buf(), forced));
        Ok(())
    }

    fn off(&mut self, p: &Path) -> Result<(), Error> {
        swapoff(p).map_err(|e| Error::io("swapoff", p, e))?;
        self.on.retain(|(q, _)| q != p);
        Ok(())
    }
}

/// `swapoff(2)`; also what a forced exit runs.
fn swapoff(p: &Path) -> std::io::Result<()> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::swapoff(c.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Drop for KernelSwap {
    fn drop(&mut self) {
        for (p, _forced_exit) in std::mem::take(&mut self.on).into_iter().rev() {
            if let Err(e) = swapoff(&p) {
                eprintln!("xtask: swapoff {}: {e}", p.display());
            }
        }
    }
}

/// Our memory cgroup: `swapkit-bench-<pid>-<n>` under the memory hierarchy.
#[derive(Debug)]
pub(crate) struct Cgroup {
    dir: PathBuf,
    limit_file: &'static str,
    unlimited: &'static str,
    _forced_exit: cancel::OnForcedExit,
}

impl Cgroup {
    pub(crate) fn create(limit: u64) -> Result<Cgroup, Error> {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2 = Path::new("/sys/fs/cgroup");
        let (parent, limit_file, unlimited) = if v1.join("memory.limit_in_bytes").exists() {
            (v1, "memory.limit_in_bytes", "-1")
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
        {
            // v2: the memory controller must be on for children of the root.
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+memory");
            (v2, "memory.max", "max")
        } else {
            return Err(Error::skipped(
                "kernel-baseline",
                "no memory cgroup (v1 or v2) on this machine",
            ));
        };
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = parent.join(format!("swapkit-bench-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| Error::io("creating cgroup", &dir, e))?;
        // A forced exit kills what is left in it (only our child can be) and removes it.
        let forced = {
            let dir = dir.clone();
            cancel::on_forced_exit(move || {
                if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let pid = nix::unistd::Pid::from_raw(pid);
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                }
                for _ in 0..20 {
                    if std::fs::remove_dir(&dir).is_ok() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
        };
        let cg = Cgroup {
            dir,
            limit_file,
            unlimited,
            _forced_exit: forced,
        };
        cg.write(limit_file, &limit.to_string())?;
        if limit_file == "memory.max" {
            // Keep the child's swap unbounded in v2 (it is by default; say so explicitly).
            let _ = cg.write("memory.swap.max", "max");
        } else {
            let _ = cg.write("memory.swappiness", "60");
        }
        Ok(cg)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), Error> {
        let p = self.dir.join(file);
        std::fs::write(&p, value).map_err(|e| Error::io("writing", p, e))
    }

    /// A counter of the cgroup's `memory.stat` (`pgmajfault`, ...); 0 when absent.
    pub(crate) fn stat(&self, key: &str) -> u64 {
        std::fs::read_to_string(self.dir.join("memory.stat"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// The cgroup's `cgroup.procs`: a process writing its pid there joins it.
    pub(crate) fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub(crate) fn add(&self, pid: u32) -> Result<(), Error> {
        self.write("cgroup.procs", &pid.to_string())
    }

    fn unlimit(&self) -> Result<(), Error> {
        self.write(self.limit_file, self.unlimited)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The child is dead by now; a cgroup without tasks can be removed with rmdir.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("xtask: could not remove cgroup {}", self.dir.display());
    }
}

/// A child process of ours (`xtask SUBCOMMAND --pages N`), driven line by line over its
/// stdin: the kernel baseline's and the region bench's kernel side. Killed on drop.
#[derive(Debug)]
pub(crate) struct ChildProcess {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    /// What error messages call it.
    name: &'static str,
}

impl ChildProcess {
    pub(crate) fn spawn(
        subcommand: &str,
        pages: u64,
        name: &'static str,
    ) -> Result<ChildProcess, Error> {
        let exe = std::env::current_exe().map_err(|e| Error::io("finding", "/proc/self/exe", e))?;
        let mut child = Command::new(&exe)
            .args([subcommand, "--pages", &pages.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting", &exe, e))?;
        let out = child
            .stdout
            .take()
            .map(BufReader::new)
            .ok_or_else(|| Error::Setup(format!("{name} has no stdout")))?;
        Ok(ChildProcess { child, out, name })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the line `cmd` and returns the child's one-line reply (empty if it died).
    pub(crate) fn ask(&mut self, cmd: &str) -> Result<String, Error> {
        let stdin = self
            .child
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Setup(format!("{} has no stdin", self.name)))?;
        writeln!(stdin, "{cmd}").map_err(|e| Error::io("talking to", self.name, e))?;
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .map_err(|e| Error::io("reading", self.name, e))?;
        Ok(line)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel baseline's child (`xtask kernel-child`).
#[derive(Debug)]
struct KernelChild(ChildProcess);

impl KernelChild {
    fn spawn(pages: u64) -> Result<KernelChild, Error> {
        ChildProcess::spawn("kernel-child", pages, "kernel child").map(KernelChild)
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Send `cmd`, wait for the reply `<want> <nanoseconds>`.
    fn step(&mut self, cmd: &str, want: &str) -> Result<u64, Error> {
        cancel::check()?;
        let line = self.0.ask(cmd)?;
        let mut f = line.split_whitespace();
        match (f.next(), f.next().and_then(|n| n.parse().ok())) {
            (Some(w), Some(ns)) if w == want => Ok(ns),
            _ => Err(Error::workload(
                "kernel-baseline",
                format!("the child process stopped at `{cmd}` (killed by the OOM killer?)"),
            )),
        }
    }
}

/// The child's side: wait for `go`, write `pages` pages of non-zero data, report; wait for
/// `read N`, read them back in order with N threads (each its own contiguous share), report;
/// exit on end of input.
pub fn child_main(pages: u64) -> Result<(), Error> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut data: Vec<u8> = Vec::new();
    let mut out = std::io::stdout().lock();
    while let Some(Ok(cmd)) = lines.next() {
        let mut words = cmd.split_whitespace();
        match words.next().unwrap_or("") {
            "go" => {
                let t = Instant::now();
                data = vec![0u8; (pages * PAGE) as usize];
                for (i, page) in data.chunks_mut(PAGE as usize).enumerate() {
                    page.fill((i as u8) | 1);
                }
                let _ = writeln!(out, "written {}", t.elapsed().as_nanos());
            }
            "read" => {
                let readers: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let t = Instant::now();
                std::hint::black_box(read_back(&data, readers));
                let _ = writeln!(out, "read {}", t.elapsed().as_nanos());
            }
            _ => break,
        }
        let _ = out.flush();
    }
    Ok(())
}

/// Touches every page of `data` in order, `readers` threads each on its own contiguous
/// share (whole pages); a checksum so nothing is optimised away.
fn read_back(data: &[u8], readers: usize) -> u64 {
    let pages = data.len().div_ceil(PAGE as usize);
    let share = pages.div_ceil(readers.max(1)).max(1) * PAGE as usize;
    std::thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(share)
            .map(|part| {
                s.spawn(move || {
                    part.chunks(PAGE as usize).fold(0u64, |sum, page| {
                        let last = page.last().copied().unwrap_or(0);
                        sum.wrapping_add(u64::from(page[0]) + u64::from(last))
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .fold(0u64, u64::wrapping_add)
    })
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn reading_back_with_several_threads_touches_every_page_once() {
        // 7 pages over 4 readers: shares of 2, 2, 2 and 1 page.
        let mut data = vec![0u8; 7 * PAGE as usize];
        for (i, page) in data.chunks_mut(PAGE as usize).enumerate() {
            page.fill(i as u8 + 1);
        }
        let one = read_back(&data, 1);
        assert_eq!(one, (1..=7u64).map(|i| 2 * i).sum::<u64>());
        assert_eq!(read_back(&data, 4), one);
        assert_eq!(read_back(&data, 16), one);
        assert_eq!(read_back(&[], 4), 0);
    }
}
