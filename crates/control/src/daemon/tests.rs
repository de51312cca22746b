//! The daemon's defences and lifetimes, in-process over a real socket with the in-memory
//! backend: bad frames, permissions, per-uid scoping, cleanup on disconnect, shutdown.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::peer::Peer;
use super::requests;
use super::shared::Shared;
use super::*;
use crate::client::{Client, ClientError};
use crate::proto::{ErrorKind, MAGIC, PROTOCOL_VERSION, Reply, Request};

/// A daemon serving on a socket in a temp dir, shut down on drop (also for `sync_tests`).
pub(super) struct Running {
    pub(super) socket: PathBuf,
    server: Server,
    _dir: tempfile::TempDir,
}

pub(super) fn start(backend: Arc<dyn Backend>) -> Running {
    start_with(backend, Config::default())
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn raw_frame(version: u16, kind: u16, meta: &[u8], data_len: u32) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend_from_slice(meta);
    b
}

fn error_kind(r: Reply) -> ErrorKind {
    match r {
        Reply::Error { kind, .. } => kind,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn malformed_and_unknown_requests_get_errors_and_the_connection_keeps_serving() {
    let d = start(Arc::new(MemoryBackend::new(100)));
    let mut c = Client::connect(&d.socket).unwrap();
    let r = c
        .call_raw(&raw_frame(PROTOCOL_VERSION, 1, b"{nope", 0))
        .unwrap();
    assert_eq!(error_kind(r), ErrorKind::Malformed);
    let r = c
        .call_raw(&raw_frame(
            PROTOCOL_VERSION,
            1,
            br#"{"op":"format_disk"}"#,
            0,
        ))
        .unwrap();
    assert_eq!(error_kind(r), ErrorKind::UnknownRequest);
    let r = c.call_raw(&raw_frame(
        PROTOCOL_VERSION,
        1,
        br#"{"op":"get_pages","object":1,"pindex":0,"count":100000}"#,
        0,
    ));
    assert_eq!(error_kind(r.unwrap()), ErrorKind::Malformed);
    // Same connection, still served.
    assert_eq!(c.stats().unwrap().total_pages, 100);
}

#[test]
fn oversized_or_foreign_frames_are_answered_then_closed_and_others_are_unaffected() {
    let d = start(Arc::new(MemoryBackend::new(100)));
    let mut other = Client::connect(&d.socket).unwrap();
    let mut c = Client::connect(&d.socket).unwrap();
    let r = c
        .call_raw(&raw_frame(PROTOCOL_VERSION, 1, b"", u32::MAX))
        .unwrap();
    assert_eq!(error_kind(r), ErrorKind::TooLarge);
    let mut c = Client::connect(&d.socket).unwrap();
    let r = c.call_raw(&raw_frame(7, 1, b"{}", 0)).unwrap();
    let Reply::Error { kind, message } = r else {
        panic!()
    };
    assert_eq!(kind, ErrorKind::Version);
    assert!(message.contains("version 7"), "{message}");
    let mut c = Client::connect(&d.socket).unwrap();
    let r = c.call_raw(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(error_kind(r), ErrorKind::Malformed);
    assert!(other.stats().is_ok());
}

fn shared(backend: Arc<dyn Backend>) -> Shared {
    Shared::new(backend, Config::default(), 0)
}

fn call(s: &Shared, uid: u32, req: Request, data: Vec<u8>) -> Reply {
    requests::handle(
        s,
        &Peer {
            uid,
            pid: 1,
            conn: u64::from(uid),
        },
        req,
        data,
    )
    .0
}

#[test]
fn control_requests_need_root_or_the_daemons_uid() {
    let s = shared(Arc::new(MemoryBackend::new(10)));
    let on = Request::SwapOn {
        path: "/x".into(),
        priority: None,
        discard: false,
    };
    assert_eq!(
        error_kind(call(&s, 65534, on.clone(), vec![])),
        ErrorKind::Permission
    );
    let set = Request::Set {
        name: "swap_async_max".into(),
        value: 2,
    };
    assert_eq!(
        error_kind(call(&s, 65534, set, vec![])),
        ErrorKind::Permission
    );
    assert!(matches!(
        call(&s, 65534, Request::Stats { frag: false }, vec![]),
        Reply::Stats { .. }
    ));
    assert_eq!(call(&s, 0, on, vec![]), Reply::Ok);
}

#[test]
fn one_uid_cannot_see_or_touch_another_uids_objects() {
    let s = shared(Arc::new(MemoryBackend::new(10)));
    let Reply::Object { object } = call(
        &s,
        1000,
        Request::Create {
            handle: Some("db".into()),
        },
        vec![],
    ) else {
        panic!()
    };
    let page = vec![7u8; device::PAGE_SIZE];
    let put = Request::PutPages {
        object,
        pindex: 0,
        count: 1,
        sync: true,
    };
    assert!(matches!(
        call(&s, 1000, put.clone(), page.clone()),
        Reply::Put { .. }
    ));
    for req in [
        put,
        Request::GetPages {
            object,
            pindex: 0,
            count: 1,
        },
        Request::HasPage { object, pindex: 0 },
        Request::Destroy { object },
    ] {
        let data = if matches!(req, Request::PutPages { .. }) {
            page.clone()
        } else {
            vec![]
        };
        assert_eq!(error_kind(call(&s, 1001, req, data)), ErrorKind::NotFound);
    }
    // The same handle names a different object for another uid.
    let Reply::Object { object: other } = call(
        &s,
        1001,
        Request::Create {
            handle: Some("db".into()),
        },
        vec![],
    ) else {
        panic!()
    };
    assert_ne!(other, object);
    assert_eq!(
        call(&s, 1000, Request::HasPage { object, pindex: 0 }, vec![]),
        Reply::Has {
            has: true,
            before: 0,
            after: 0
        }
    );
}

#[test]
fn a_disconnected_clients_anonymous_objects_are_freed_and_named_ones_kept() {
    let backend = Arc::new(MemoryBackend::new(100));
    let d = start(backend.clone());
    let mut c = Client::connect(&d.socket).unwrap();
    let anon = c.create(None).unwrap();
    let named = c.create(Some("keep")).unwrap();
    for o in [anon, named] {
        c.putpages(o, 0, vec![1u8; 2 * device::PAGE_SIZE], true)
            .unwrap();
    }
    assert_eq!(backend.stats().objects, 2);
    drop(c);
    assert!(
        wait_until(|| backend.stats().objects == 1),
        "the anonymous object was not freed"
    );
    let mut c = Client::connect(&d.socket).unwrap();
    assert_eq!(c.create(Some("keep")).unwrap(), named);
    let (st, data) = c.getpages(named, 0, 2).unwrap();
    assert!(st.iter().all(|s| *s == crate::proto::GetStatus::Ok));
    assert!(data.iter().all(|b| *b == 1));
    assert!(matches!(
        c.getpages(anon, 0, 1),
        Err(ClientError::Daemon {
            kind: ErrorKind::NotFound,
            ..
        })
    ));
}

/// A backend whose swapoff takes a while, to catch shutdown with a request in flight. The
/// barrier is met when a swapoff has begun, so the test triggers shutdown with it in flight.
struct SlowOff(MemoryBackend, Mutex<bool>, std::sync::Barrier);

impl Backend for SlowOff {
    fn stats(&self) -> pager::PagerStats {
        self.0.stats()
    }
    fn swapon(&self, p: &Path, prio: i32, d: bool) -> Result<(), BackendError> {
        self.0.swapon(p, prio, d)
    }
    fn swapoff(&self, p: &Path, force: bool) -> Result<u64, BackendError> {
        self.2.wait();
        std::thread::sleep(Duration::from_millis(300));
        let r = self.0.swapoff(p, force);
        *self.1.lock() = true;
        r
    }
    fn set_swap_async_max(&self, n: u64) -> u64 {
        self.0.set_swap_async_max(n)
    }
    fn create(&self) -> Result<Arc<dyn BackendObject>, BackendError> {
        self.0.create()
    }
}

#[test]
fn shutdown_lets_the_request_in_flight_finish_and_answer() {
    let backend = Arc::new(SlowOff(
        MemoryBackend::new(10),
        Mutex::new(false),
        std::sync::Barrier::new(2),
    ));
    let d = start(backend.clone());
    let mut c = Client::connect(&d.socket).unwrap();
    c.swapon("/x", None, false).unwrap();
    let sock = d.socket.clone();
    let off = std::thread::spawn(move || c.swapoff("/x", false));
    backend.2.wait();
    d.server.stop().unwrap();
    assert!(
        *backend.1.lock(),
        "the daemon returned before the swapoff finished"
    );
    assert!(
        off.join().unwrap().is_ok(),
        "the swapoff in flight got no answer"
    );
    assert!(!sock.exists(), "the socket was left behind");
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-sock")
        .tempdir()
        .unwrap();
    let path = dir.path().join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let live = socket::bind(&path, None).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let err = socket::bind(&path, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("a daemon already runs on {}", path.display())
    );
    drop(live);
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        socket::bind(&file, None),
        Err(socket::SocketError::NotSocket(_))
    ));
}

fn start_with(backend: Arc<dyn Backend>, config: Config) -> Running {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-daemon")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("s.sock");
    let server = Daemon::bind(DaemonOptions {
        socket: socket.clone(),
        socket_group: None,
        config,
        config_path: None,
        log_level_flag: false,
        auto_on: false,
    })
    .unwrap()
    .spawn(backend)
    .unwrap();
    Running {
        socket,
        server,
        _dir: dir,
    }
}

/// Issue #12: an idle connection is closed after the idle timeout, and one that sent half a
/// header after the read timeout; one that keeps asking stays.
#[test]
fn idle_and_half_sent_connections_are_closed_after_their_timeouts() {
    use std::io::{Read, Write};
    let mut config = Config::default();
    config.limits.idle_timeout_ms = 300;
    config.limits.read_timeout_ms = 300;
    let d = start_with(Arc::new(MemoryBackend::new(10)), config);
    let mut idle = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    let mut half = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    half.write_all(&MAGIC).unwrap();
    let mut busy = Client::connect(&d.socket).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(900) {
        busy.stats().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both were closed by the daemon: reads see the end, not a timeout.
    for s in [&mut idle, &mut half] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = Vec::new();
        assert!(s.read_to_end(&mut buf).is_ok());
    }
    assert!(busy.stats().is_ok(), "a connection in use is never idle");
}

/// Issue #25: a connection holding anonymous objects outlives the idle timeout, and so do
/// its objects (closing it would free them: a program under `swapctl run` may sleep).
#[test]
fn a_connection_holding_anonymous_objects_is_never_idle() {
    let mut config = Config::default();
    config.limits.idle_timeout_ms = 200;
    let d = start_with(Arc::new(MemoryBackend::new(10)), config);
    let mut holder = Client::connect(&d.socket).unwrap();
    let o = holder.create(None).unwrap();
    let page = vec![7u8; device::PAGE_SIZE];
    holder.putpages(o, 0, page.clone(), true).unwrap();
    let mut plain = Client::connect(&d.socket).unwrap();
    plain.stats().unwrap();
    std::thread::sleep(Duration::from_millis(900));
    assert!(plain.stats().is_err(), "an idle connection is closed");
    let (st, data) = holder.getpages(o, 0, 1).unwrap();
    assert_eq!(st, [crate::proto::GetStatus::Ok]);
    assert_eq!(data, page);
}

/// Issue #12: a reload (SIGHUP) applies the file's limits and devices.
#[test]
fn a_reload_applies_the_new_limits_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "").unwrap();
    let socket = dir.path().join("s.sock");
    let d = Daemon::bind(DaemonOptions {
        socket: socket.clone(),
        socket_group: None,
        config: Config::default(),
        config_path: Some((path.clone(), true)),
        log_level_flag: false,
        auto_on: false,
    })
    .unwrap();
    let reload = d.reload_flag();
    let _running = Running {
        socket: socket.clone(),
        server: d.spawn(Arc::new(MemoryBackend::new(10))).unwrap(),
        _dir: dir,
    };
    std::fs::write(
        &path,
        "[limits]\nmax_handle_len = 4\n[[device]]\npath = \"/dev/x\"\n",
    )
    .unwrap();
    reload.store(true, Ordering::SeqCst);
    let mut c = Client::connect(&socket).unwrap();
    assert!(wait_until(|| c.config().is_ok_and(|d| d.len() == 1)));
    let err = c.create(Some("hello")).unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Quota), "{err}");
    assert!(c.create(Some("abcd")).is_ok());
}
