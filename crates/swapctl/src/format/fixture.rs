//! Fixed snapshots the output tests render: two loop devices, one half full, one draining.

use pager::*;

/// One piece: a literal snapshot, field by field.
pub fn two_devices() -> PagerStats {
    let frag = FragStats {
        free_ranges: 3,
        largest: 16000,
        average: 5400,
        buckets: vec![(1, 1, 1), (144, 232, 1), (10946, 17710, 1)],
        text: String::new(),
    };
    let lat = device::LatencySummary {
        count: 100,
        mean_us: 210.5,
        p50_us: 180,
        p99_us: 900,
        p999_us: 1500,
        max_us: 2100,
    };
    let dev0 = DeviceStats {
        id: 0,
        path: "/dev/loop0".into(),
        priority: 10,
        state: DeviceState::Active,
        kind: "block".into(),
        direct_io: true,
        discard: true,
        uuid: "5e3c7b1a-0d2f-4e6a-9b8c-1f2e3d4c5b6a".into(),
        label: "fast".into(),
        first_block: 0,
        size_bytes: 64 << 20,
        total_pages: 16383,
        used_pages: 8192,
        free_pages: 8191,
        bad_pages: 0,
        io: device::AreaStats {
            in_flight: 2,
            reads: 40,
            writes: 300,
            pages_read: 1000,
            pages_written: 8192,
            read_latency: lat,
            write_latency: lat,
            ..Default::default()
        },
        frag: frag.clone(),
        ..Default::default()
    };
    let dev1 = DeviceStats {
        id: 1,
        path: "/tmp/swapkit-b.img".into(),
        priority: -1,
        state: DeviceState::Draining {
            moved: 10,
            total: 40,
        },
        kind: "file".into(),
        direct_io: false,
        discard: false,
        uuid: "00000000-0000-0000-0000-000000000001".into(),
        label: String::new(),
        first_block: 16384,
        size_bytes: 32 << 20,
        total_pages: 8189,
        used_pages: 40,
        free_pages: 0,
        bad_pages: 2,
        frag: FragStats::default(),
        ..Default::default()
    };
    PagerStats {
        uptime_ms: 3_723_000,
        page_size: 4096,
        engine: "io_uring".into(),
        total_pages: 16383 + 8189,
        used_pages: 8232,
        free_pages: 8191,
        bad_pages: 2,
        hysteresis: Hysteresis {
            almost_full: true,
            full: false,
        },
        tunables: Tunables {
            interleave: 32,
            nswbuf: 128,
            swap_async_max: 4,
            max_cluster: 32,
            nswap_lowat: 1024,
            nswap_hiwat: 2048,
            checksum: pager::Checksum::Crc32c,
        },
        pbufs: PbufStats {
            read: PoolStats {
                in_use: 1,
                max: 64,
                waits: 0,
            },
            sync_write: PoolStats {
                in_use: 0,
                max: 32,
                waits: 3,
            },
            async_write: PoolStats {
                in_use: 4,
                max: 4,
                waits: 17,
            },
        },
        counters: Counters {
            swapin: 40,
            swapout: 300,
            pages_in: 1000,
            pages_out: 8232,
            intrans_waits: 5,
            alloc_failures: 0,
            read_errors: 0,
            write_errors: 1,
            corrupt_pages: 0,
            write_retries: 0,
            async_write_failures: 0,
            events: 1,
        },
        devices: vec![dev0, dev1],
        objects: 12,
        named_objects: 2,
        meta_bytes: 49152,
    }
}

pub fn one_device() -> PagerStats {
    let mut s = two_devices();
    s.devices.truncate(1);
    s.total_pages = 16383;
    s.used_pages = 8192;
    s
}

/// Three programs on the swap space: a database at its limit, a sort with a long command
/// line, and one that reports absurd figures and a command with control characters.
pub fn three_runs() -> Vec<control::proto::ProcessUsage> {
    use control::proto::ProcessUsage;
    vec![
        ProcessUsage {
            pid: 4121,
            uid: 0,
            command: "postgres -D /var/lib/postgresql/16/main".into(),
            objects: 3,
            swapped_pages: 180_224,
            resident_pages: 65_536,
            limit_pages: 65_536,
            faults: 912_311,
            major_faults: 401_100,
            pages_in: 498_002,
            pages_out: 612_000,
            read_errors: 0,
            since: 3_600,
        },
        ProcessUsage {
            pid: 30_077,
            uid: 1000,
            command: "sort --buffer-size=6G --parallel=2 -o /var/tmp/sorted.txt /var/tmp/huge.txt"
                .into(),
            objects: 1,
            swapped_pages: 12_800,
            resident_pages: 4_100,
            limit_pages: 262_144,
            faults: 17_002,
            major_faults: 300,
            pages_in: 300,
            pages_out: 12_900,
            read_errors: 2,
            since: 42,
        },
        ProcessUsage {
            pid: 30_999,
            uid: 65_534,
            command: "evil\u{1b}[2J\nrm".into(),
            objects: 0,
            swapped_pages: 0,
            resident_pages: u64::MAX,
            limit_pages: 0,
            faults: u64::MAX,
            major_faults: 0,
            pages_in: 0,
            pages_out: 0,
            read_errors: 0,
            since: 1,
        },
    ]
}
