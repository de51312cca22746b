//! Remote areas over NBD against real servers (`nbdkit memory`, `nbdkit file`, `qemu-nbd`)
//! on Unix sockets and loopback TCP: mkswap and the header over NBD, pipelined engine I/O
//! checked against what was written (on both engines: the remote path is the same, the
//! engine only routes), discard, identity, a server killed and restarted.
//!
//! Skips, saying so, where libnbd or the servers are missing (`.ci/run` installs them).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use device::nbd::server::{self, Backend, Listen, Server};
use device::{
    AreaKind, DeviceError, Engine, EngineKind, IoOp, IoRequest, MkswapOptions, OpenOptions,
    PAGE_SIZE, PageBuf, StorageId, SwapArea,
};

/// Whether the tests can run; prints why not.
fn can_run(program: &str) -> bool {
    let why = server::missing(&[program]);
    if let Some(why) = &why {
        println!("SKIP: {why}");
    }
    why.is_none()
}

fn engines() -> Vec<Engine> {
    let mut all = vec![Engine::new(EngineKind::ThreadPool).unwrap()];
    if let Ok(e) = Engine::new(EngineKind::IoUring) {
        all.push(e);
    }
    all
}

fn pattern(page: u64, generation: u64) -> Vec<u8> {
    let mut v = vec![0u8; PAGE_SIZE];
    for (i, chunk) in v.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(page * 1_000_003 + generation * 7 + i as u64).to_le_bytes());
    }
    v
}

fn mkswap_and_open(uri: &str, pages: Option<u64>) -> Arc<SwapArea> {
    let opts = MkswapOptions {
        pages,
        label: Some("remote".into()),
        ..Default::default()
    };
    let header = device::mkswap(uri, &opts).unwrap();
    let area = SwapArea::open(uri, &OpenOptions::default()).unwrap();
    assert_eq!(area.kind(), AreaKind::Nbd);
    assert_eq!(area.header().uuid, header.uuid);
    assert_eq!(area.header().label, "remote");
    assert_eq!(area.path(), Path::new(uri));
    Arc::new(area)
}

/// Writes `pages` pages in clusters of 8 with many requests in flight, then reads them
/// back the same way and compares, through `engine`.
fn write_read_all(engine: &Engine, area: &Arc<SwapArea>, pages: u64, generation: u64) {
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut page = 1;
    while page + 8 <= pages {
        let mut buf = PageBuf::new(8);
        for i in 0..8 {
            buf.page_mut(i)
                .copy_from_slice(&pattern(page + i as u64, generation));
        }
        let d = Arc::clone(&done);
        engine.submit(
            area,
            IoRequest {
                tag: page,
                op: IoOp::Write,
                page,
                buf,
            },
            Box::new(move |c| d.lock().unwrap().push(c.result.map_err(|e| e.to_string()))),
        );
        page += 8;
    }
    let writes = (page - 1) / 8;
    wait_for(&done, writes as usize);
    assert!(
        done.lock().unwrap().iter().all(Result::is_ok),
        "{:?}",
        done.lock().unwrap()
    );
    let read = Arc::new(Mutex::new(Vec::new()));
    let mut page = 1;
    while page + 8 <= pages {
        let r = Arc::clone(&read);
        engine.submit(
            area,
            IoRequest {
                tag: page,
                op: IoOp::Read,
                page,
                buf: PageBuf::new(8),
            },
            Box::new(move |c| r.lock().unwrap().push(c)),
        );
        page += 8;
    }
    wait_for(&read, writes as usize);
    for c in read.lock().unwrap().iter() {
        assert!(c.result.is_ok(), "{:?}", c.result);
        for i in 0..8 {
            assert_eq!(
                c.buf.page(i),
                pattern(c.page + i as u64, generation),
                "page {}",
                c.page + i as u64
            );
        }
    }
}

fn wait_for<T>(v: &Mutex<Vec<T>>, n: usize) {
    for _ in 0..3000 {
        if v.lock().unwrap().len() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("only {} of {n} completions", v.lock().unwrap().len());
}

#[test]
fn nbdkit_memory_unix_and_tcp_on_both_engines() {
    if !can_run("nbdkit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nbd.sock");
    let unix = Server::start(
        Backend::NbdkitMemory { bytes: 16 << 20 },
        Listen::Unix(sock),
        "swap",
        None,
    )
    .unwrap();
    let port = server::free_port().unwrap();
    let tcp = Server::start(
        Backend::NbdkitMemory { bytes: 16 << 20 },
        Listen::Tcp(([127, 0, 0, 1], port).into()),
        "swap",
        None,
    )
    .unwrap();
    for server in [&unix, &tcp] {
        let area = mkswap_and_open(&server.uri(), None);
        assert_eq!(area.last_page(), (16 << 20) / PAGE_SIZE as u64 - 1);
        // nbdkit memory allows multi-conn: several connections.
        assert!(area.remote().unwrap().connections() > 1);
        for (g, engine) in engines().iter().enumerate() {
            write_read_all(engine, &area, 1024, g as u64 + 1);
            // submit_wait too.
            let c = engine.submit_wait(
                &area,
                IoRequest {
                    tag: 0,
                    op: IoOp::Read,
                    page: 9,
                    buf: PageBuf::new(1),
                },
            );
            c.result.unwrap();
            assert_eq!(c.buf.page(0), pattern(9, g as u64 + 1));
        }
        // The blocking path and page 0's guard.
        let mut buf = PageBuf::new(1);
        area.read_pages(1, &mut buf).unwrap();
        assert!(matches!(
            area.read_pages(0, &mut buf),
            Err(DeviceError::OutOfRange { .. })
        ));
        let st = area.stats();
        assert!(st.writes >= 127 && st.reads >= 127, "{st:?}");
    }
}

#[test]
fn qemu_nbd_file_over_tcp_and_unix() {
    if !can_run("qemu-nbd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let port = server::free_port().unwrap();
    let mut tcp = Server::start(
        Backend::QemuNbd { file: file.clone() },
        Listen::Tcp(([127, 0, 0, 1], port).into()),
        "e",
        None,
    )
    .unwrap();
    {
        let area = mkswap_and_open(&tcp.uri(), Some(1024));
        assert_eq!(area.last_page(), 1023);
        for (g, engine) in engines().iter().enumerate() {
            write_read_all(engine, &area, 1024, g as u64 + 10);
        }
        area.sync().unwrap();
    }
    tcp.kill();
    // The header and data are in the file, and util-linux reads the header as swap.
    if let Ok(out) = std::process::Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE"])
        .arg(&file)
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "swap");
    }
    let area = SwapArea::open(&file, &OpenOptions::default()).unwrap();
    assert_eq!(area.last_page(), 1023);
    let mut buf = PageBuf::new(1);
    area.read_pages(17, &mut buf).unwrap();
    assert_eq!(buf.page(0), pattern(17, 11));
    drop(area);
    let unix = Server::start(
        Backend::QemuNbd { file },
        Listen::Unix(dir.path().join("q.sock")),
        "e",
        None,
    )
    .unwrap();
    let area = SwapArea::open(unix.uri(), &OpenOptions::default()).unwrap();
    area.read_pages(17, &mut buf).unwrap();
    assert_eq!(buf.page(0), pattern(17, 11));
}

#[test]
fn discard_is_trim() {
    if !can_run("nbdkit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        Backend::NbdkitMemory { bytes: 4 << 20 },
        Listen::Unix(dir.path().join("t.sock")),
        "",
        None,
    )
    .unwrap();
    let area = mkswap_and_open(&s.uri(), None);
    let data = PageBuf::from_bytes(&pattern(5, 1));
    area.write_pages(5, &data).unwrap();
    area.discard(1, area.last_page()).unwrap();
    assert_eq!(area.stats().discards, 1);
    // nbdkit memory reads trimmed pages as zeroes; the header survives.
    let mut buf = PageBuf::new(1);
    area.read_pages(5, &mut buf).unwrap();
    assert!(buf.as_slice().iter().all(|&b| b == 0));
    drop(area);
    SwapArea::open(s.uri(), &OpenOptions::default()).unwrap();
}

#[test]
fn identity_refusals_and_missing_server() {
    let a = device::storage::identify(Path::new("nbd://127.0.0.1/x")).unwrap();
    let b = device::storage::identify(Path::new("nbd://127.0.0.1:10809/x?connections=2")).unwrap();
    let c = device::storage::identify(Path::new("nbd://127.0.0.1/y")).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(matches!(a[0], StorageId::Remote { .. }));
    let err = SwapArea::open("nbd+unix:///x", &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("socket=PATH"), "{err}");
    if !device::nbd::available() {
        return;
    }
    // Nobody listens: refused within the connect timeout, naming the URI.
    let port = server::free_port().unwrap();
    let uri = format!("nbd://127.0.0.1:{port}/x?connect-timeout=2");
    let err = SwapArea::open(&uri, &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with(&uri), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    // No header on a fresh export.
    if server::have("nbdkit") {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start(
            Backend::NbdkitMemory { bytes: 1 << 20 },
            Listen::Unix(dir.path().join("h.sock")),
            "",
            None,
        )
        .unwrap();
        let err = SwapArea::open(s.uri(), &OpenOptions::default()).unwrap_err();
        assert!(matches!(err, DeviceError::NoHeader { .. }), "{err}");
        let big = MkswapOptions {
            pages: Some(1 << 20),
            ..Default::default()
        };
        assert!(matches!(
            device::mkswap(s.uri(), &big),
            Err(DeviceError::TooSmall { .. })
        ));
    }
}

#[test]
fn server_killed_and_restarted_fails_in_flight_then_resumes() {
    if !can_run("nbdkit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("persist.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    let mut s = Server::start(
        Backend::NbdkitFile { file },
        Listen::Unix(dir.path().join("p.sock")),
        "",
        None,
    )
    .unwrap();
    let uri = format!("{}&request-timeout=5&dead-after=3", s.uri());
    device::mkswap(&uri, &MkswapOptions::default()).unwrap();
    let area = Arc::new(SwapArea::open(&uri, &OpenOptions::default()).unwrap());
    let engine = Engine::new(EngineKind::ThreadPool).unwrap();
    let write = |page: u64, g: u64| {
        engine
            .submit_wait(
                &area,
                IoRequest {
                    tag: page,
                    op: IoOp::Write,
                    page,
                    buf: PageBuf::from_bytes(&pattern(page, g)),
                },
            )
            .result
    };
    write(3, 1).unwrap();
    s.kill();
    // The server is gone: I/O fails (after waiting for it up to the request timeout)
    // and never returns wrong data.
    assert!(write(4, 1).is_err());
    s.restart().unwrap();
    // The idle area notices the server's return on its own (it keeps trying).
    let remote = area.remote().unwrap();
    for _ in 0..100 {
        if remote.reconnects() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(remote.reconnects() > 0, "no reconnection without I/O");
    // It came back with its data: reads and writes work again.
    let mut ok = false;
    for _ in 0..50 {
        if write(5, 1).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "no reconnection");
    let mut buf = PageBuf::new(1);
    area.read_pages(3, &mut buf).unwrap();
    assert_eq!(buf.page(0), pattern(3, 1));
    // Gone for longer than dead-after: the area vanished (the pager marks it failed).
    s.kill();
    std::thread::sleep(Duration::from_millis(4500));
    let err = write(6, 1).unwrap_err();
    assert!(matches!(err, DeviceError::Vanished { .. }), "{err}");
}

#[test]
fn tls_with_a_pre_shared_key() {
    if !can_run("nbdkit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("keys.psk");
    let key: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) as u8))
        .collect();
    std::fs::write(&psk, format!("alice:{key}\n")).unwrap();
    let port = server::free_port().unwrap();
    let s = match Server::start_tls(
        Backend::NbdkitMemory { bytes: 4 << 20 },
        Listen::Tcp(([127, 0, 0, 1], port).into()),
        "alice",
        &psk,
    ) {
        Ok(s) => s,
        Err(e) => {
            println!("SKIP: nbdkit without TLS here ({e})");
            return;
        }
    };
    let uri = s.uri();
    assert!(uri.starts_with("nbds://alice@"), "{uri}");
    let area = mkswap_and_open(&uri, None);
    let data = PageBuf::from_bytes(&pattern(3, 3));
    area.write_pages(3, &data).unwrap();
    let mut buf = PageBuf::new(1);
    area.read_pages(3, &mut buf).unwrap();
    assert_eq!(buf, data);
    // Cleartext to a server that requires TLS: refused, never served.
    let plain = format!("nbd://127.0.0.1:{port}/?connect-timeout=3");
    let err = SwapArea::open(&plain, &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[test]
fn closing_an_area_does_not_wait_out_a_hanging_reconnection() {
    if !can_run("nbdkit") {
        return;
    }
    let port = server::free_port().unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = Server::start(
        Backend::NbdkitMemory { bytes: 1 << 20 },
        Listen::Tcp(addr),
        "",
        None,
    )
    .unwrap();
    let uri = format!("{}?connect-timeout=60", s.uri());
    device::mkswap(&uri, &MkswapOptions::default()).unwrap();
    let area = SwapArea::open(&uri, &OpenOptions::default()).unwrap();
    s.kill();
    // A "server" that accepts connections (the kernel's backlog) and never says a word:
    // every reconnection now hangs in the handshake, for up to the 60 s connect timeout.
    let _silent = std::net::TcpListener::bind(addr).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let start = std::time::Instant::now();
    drop(area);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "closing waited {:?} for a connection attempt",
        start.elapsed()
    );
}
