//! First round trip through the blocking path and the engine, on a plain file.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;

use device::{
    Engine, EngineKind, IoOp, IoRequest, MkswapOptions, OpenOptions, PageBuf, SwapArea, mkswap,
};

#[test]
fn file_area_round_trips_through_the_thread_pool() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-test")
        .tempdir()
        .unwrap();
    let path = dir.path().join("swapkit-area");
    let header = mkswap(
        &path,
        &MkswapOptions {
            pages: Some(256),
            label: Some("x".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(header.last_page, 255);
    let area = Arc::new(SwapArea::open(&path, &OpenOptions::default()).unwrap());
    assert_eq!(area.last_page(), 255);
    assert_eq!(area.header().label, "x");
    let engine = Engine::new(EngineKind::ThreadPool).unwrap();
    let mut buf = PageBuf::new(4);
    buf.as_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    let expect = buf.clone();
    let c = engine.submit_wait(
        &area,
        IoRequest {
            tag: 7,
            op: IoOp::Write,
            page: 10,
            buf,
        },
    );
    c.result.unwrap();
    assert_eq!(c.tag, 7);
    let c = engine.submit_wait(
        &area,
        IoRequest {
            tag: 8,
            op: IoOp::Read,
            page: 10,
            buf: PageBuf::new(4),
        },
    );
    c.result.unwrap();
    assert_eq!(c.buf, expect);
    let mut again = PageBuf::new(4);
    area.read_pages(10, &mut again).unwrap();
    assert_eq!(again, expect);
    let s = area.stats();
    assert_eq!(
        (
            s.reads,
            s.writes,
            s.pages_read,
            s.pages_written,
            s.in_flight
        ),
        (2, 1, 8, 4, 0)
    );
    let c = engine.submit_wait(
        &area,
        IoRequest {
            tag: 9,
            op: IoOp::Read,
            page: 0,
            buf: PageBuf::new(1),
        },
    );
    assert!(matches!(
        c.result,
        Err(device::DeviceError::OutOfRange { .. })
    ));
}

#[test]
fn loop_device_attaches_and_detaches() {
    if let Err(why) = device::loopdev::available() {
        println!("loop devices unavailable ({why}); skipping");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("swapkit-test")
        .tempdir()
        .unwrap();
    let path = dir.path().join("swapkit-loop");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let dev = device::LoopDevice::attach(&path, &device::LoopOptions::default()).unwrap();
    let info = dev.info().unwrap();
    println!("{info:?}");
    assert_eq!(info.block_size, 4096);
    mkswap(dev.path(), &MkswapOptions::default()).unwrap();
    let area = SwapArea::open(dev.path(), &OpenOptions::default()).unwrap();
    assert_eq!(area.last_page(), 255);
    drop(area);
    let p = dev.path().to_owned();
    dev.detach().unwrap();
    assert!(device::loopdev::list().unwrap().iter().all(|l| l.path != p));
}
