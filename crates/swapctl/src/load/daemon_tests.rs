//! `swapctl load --verify` against an in-process daemon over the in-memory backend: a wrong
//! page stops the run and is named; a faithful backend passes.

use std::path::Path;
use std::sync::Arc;

use control::daemon::{
    Backend, BackendError, BackendObject, Daemon, DaemonOptions, Landed, MemoryBackend, Server,
};

/// A daemon on a socket in a temp dir, stopped on drop before the dir goes.
struct Running {
    server: Server,
    _dir: tempfile::TempDir,
}

fn start(backend: Arc<dyn Backend>) -> Running {
    control::daemon::log::to_test_harness();
    let dir = tempfile::Builder::new()
        .prefix("swapkit-load")
        .tempdir()
        .unwrap();
    let server = Daemon::bind(DaemonOptions::new(dir.path().join("s.sock")))
        .unwrap()
        .spawn(backend)
        .unwrap();
    Running { server, _dir: dir }
}

/// Flips one byte of the `nth` page it returns: a pager bug, as `load --verify` must see it.
struct Corrupting(MemoryBackend, Arc<std::sync::atomic::AtomicU64>);

/// An object of [`Corrupting`]: the countdown is the backend's, over all its objects.
struct CorruptingObject(Arc<dyn BackendObject>, Arc<std::sync::atomic::AtomicU64>);

impl Backend for Corrupting {
    fn stats(&self) -> pager::PagerStats {
        self.0.stats()
    }
    fn swapon(&self, p: &Path, prio: i32, d: bool) -> Result<(), BackendError> {
        self.0.swapon(p, prio, d)
    }
    fn swapoff(&self, p: &Path, force: bool) -> Result<u64, BackendError> {
        self.0.swapoff(p, force)
    }
    fn set_swap_async_max(&self, n: u64) -> u64 {
        self.0.set_swap_async_max(n)
    }
    fn create(&self) -> Result<Arc<dyn BackendObject>, BackendError> {
        Ok(Arc::new(CorruptingObject(
            self.0.create()?,
            Arc::clone(&self.1),
        )))
    }
}

impl BackendObject for CorruptingObject {
    fn id(&self) -> u64 {
        self.0.id()
    }
    fn putpages(
        &self,
        p: u64,
        d: &[u8],
        s: bool,
        landed: Landed,
    ) -> Vec<control::proto::PutStatus> {
        self.0.putpages(p, d, s, landed)
    }
    fn getpages(
        &self,
        p: u64,
        out: &mut [u8],
    ) -> (
        Vec<control::proto::GetStatus>,
        Vec<control::proto::PageError>,
    ) {
        let (st, why) = self.0.getpages(p, out);
        for (i, s) in st.iter().enumerate() {
            if *s == control::proto::GetStatus::Ok
                && self.1.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1
            {
                out[i * device::PAGE_SIZE + 100] ^= 0x40;
            }
        }
        (st, why)
    }
    fn haspage(&self, p: u64) -> (bool, u64, u64) {
        self.0.haspage(p)
    }
    fn freespace(&self, p: u64, n: u64) {
        self.0.freespace(p, n)
    }
    fn swapped_pages(&self) -> u64 {
        self.0.swapped_pages()
    }
    fn sync(&self, max_runs: usize) -> (Vec<u64>, bool) {
        self.0.sync(max_runs)
    }
}

fn load_args(socket: &Path, verify: bool) -> crate::cli::LoadArgs {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from([
        "swapctl",
        "load",
        "--socket",
        socket.to_str().unwrap(),
        "--objects",
        "2",
        "--size",
        "256K",
        "--duration",
        "300ms",
        "--pattern",
        "random",
    ])
    .unwrap();
    let Some(crate::cli::Command::Load(mut a)) = cli.command else {
        panic!()
    };
    a.verify = verify;
    a
}

#[test]
fn load_verify_stops_at_the_first_corrupt_page_and_names_it() {
    let d = start(Arc::new(Corrupting(
        MemoryBackend::new(1 << 20),
        Arc::new(40.into()),
    )));
    let err = crate::load::run(&load_args(d.server.socket(), true)).unwrap_err();
    assert_eq!(err.code, crate::output::exit::EX_FAILURE);
    assert!(
        err.message.starts_with("load: verify failed: object "),
        "{}",
        err.message
    );
    assert!(err.message.contains("byte 100"), "{}", err.message);
}

#[test]
fn load_verify_passes_on_a_faithful_backend() {
    let d = start(Arc::new(MemoryBackend::new(1 << 20)));
    assert_eq!(
        crate::load::run(&load_args(d.server.socket(), true)).unwrap(),
        0
    );
}
