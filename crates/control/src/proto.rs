//! The wire protocol between `swapctl` clients and the daemon (see `docs/protocol.md`).
//!
//! A message is one frame: a fixed 16-byte header, then `meta_len` bytes of JSON (the request
//! or reply), then `data_len` bytes of raw page data (never JSON). The header:
//!
//! ```text
//! offset 0  magic     b"SWPK"
//!        4  version   u16 LE  (PROTOCOL_VERSION)
//!        6  kind      u16 LE  (1 request, 2 reply)
//!        8  meta_len  u32 LE  (<= MAX_META)
//!       12  data_len  u32 LE  (<= MAX_DATA, a multiple of PAGE_SIZE)
//! ```
//!
//! Invariants: the decoder never panics and never allocates more than the limits allow, whatever
//! bytes arrive (property-tested on random bytes, not fuzzed); the header layout never
//! changes between versions, so a peer of another version is always told so in words
//! instead of being misread.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use device::PAGE_SIZE;

mod process;
pub use process::{MAX_COMMAND_LEN, ProcessReport, ProcessUsage, clean_command};

pub const MAGIC: [u8; 4] = *b"SWPK";
pub const PROTOCOL_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 16;
/// Largest JSON part of a frame.
pub const MAX_META: usize = 256 * 1024;
/// Most pages one putpages/getpages may carry.
pub const MAX_PAGES: u32 = 64;
/// Page indices of an object are below this (2^40 pages, 4 PiB): requests past it are
/// malformed, so no index arithmetic in the daemon or the pager can overflow.
pub const MAX_PINDEX: u64 = 1 << 40;
/// Largest data part of a frame.
pub const MAX_DATA: usize = MAX_PAGES as usize * PAGE_SIZE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Request = 1,
    Reply = 2,
}

/// One decoded frame: its kind, the JSON text and the page data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub meta: Vec<u8>,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub kind: FrameKind,
    pub meta_len: usize,
    pub data_len: usize,
}

/// What can be wrong with bytes on the wire. After `BadMagic`, `Version` or `TooLarge` the
/// stream cannot be trusted any more and the connection is closed after the error reply.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("not a swapctl frame (bad magic {0:02x?})")]
    BadMagic([u8; 4]),
    #[error("peer speaks protocol version {got}, this swapctl speaks {PROTOCOL_VERSION}")]
    Version { got: u16 },
    #[error("unknown frame kind {0}")]
    BadKind(u16),
    #[error("{what} of {len} bytes is over the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("page data of {0} bytes is not a whole number of pages")]
    Unaligned(usize),
    #[error("truncated frame: {0} more bytes needed")]
    Incomplete(usize),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown request {0:?}")]
    Unknown(String),
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ProtoError {
    /// Whether the connection can go on after this error (the frame boundary is intact).
    pub fn is_recoverable(&self) -> bool {
        matches!(self, ProtoError::Malformed(_) | ProtoError::Unknown(_))
    }

    /// The error kind sent back to the peer.
    pub fn reply_kind(&self) -> ErrorKind {
        match self {
            ProtoError::Version { .. } => ErrorKind::Version,
            ProtoError::TooLarge { .. } => ErrorKind::TooLarge,
            ProtoError::Unknown(_) => ErrorKind::UnknownRequest,
            _ => ErrorKind::Malformed,
        }
    }
}

/// Check a header. Only the magic and the version are read before anything else, so a peer
/// of any other version gets `Version`, never a confusing length error.
pub fn decode_header(b: &[u8; HEADER_LEN]) -> Result<Header, ProtoError> {
    let magic = [b[0], b[1], b[2], b[3]];
    if magic != MAGIC {
        return Err(ProtoError::BadMagic(magic));
    }
    let version = u16::from_le_bytes([b[4], b[5]]);
    if version != PROTOCOL_VERSION {
        return Err(ProtoError::Version { got: version });
    }
    let kind = match u16::from_le_bytes([b[6], b[7]]) {
        1 => FrameKind::Request,
        2 => FrameKind::Reply,
        k => return Err(ProtoError::BadKind(k)),
    };
    let meta_len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
    let data_len = u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize;
    if meta_len > MAX_META {
        return Err(ProtoError::TooLarge {
            what: "request",
            len: meta_len,
            max: MAX_META,
        });
    }
    if data_len > MAX_DATA {
        return Err(ProtoError::TooLarge {
            what: "page data",
            len: data_len,
            max: MAX_DATA,
        });
    }
    if !data_len.is_multiple_of(PAGE_SIZE) {
        return Err(ProtoError::Unaligned(data_len));
    }
    Ok(Header {
        version,
        kind,
        meta_len,
        data_len,
    })
}

impl Frame {
    pub fn new(kind: FrameKind, meta: Vec<u8>, data: Vec<u8>) -> Frame {
        Frame { kind, meta, data }
    }

    /// The frame's bytes. Callers keep meta and data within the limits (the encoders of
    /// `Request` and `Reply` do).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.meta.len() + self.data.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.kind as u16).to_le_bytes());
        out.extend_from_slice(&(self.meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.meta);
        out.extend_from_slice(&self.data);
        out
    }

    /// Decode one frame from the front of `bytes`; returns it and the bytes consumed.
    pub fn decode(bytes: &[u8]) -> Result<(Frame, usize), ProtoError> {
        let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(ProtoError::Incomplete(HEADER_LEN - bytes.len()));
        };
        let h = decode_header(head)?;
        let total = HEADER_LEN + h.meta_len + h.data_len;
        if bytes.len() < total {
            return Err(ProtoError::Incomplete(total - bytes.len()));
        }
        let meta = bytes[HEADER_LEN..HEADER_LEN + h.meta_len].to_vec();
        let data = bytes[HEADER_LEN + h.meta_len..total].to_vec();
        Ok((Frame::new(h.kind, meta, data), total))
    }

    /// Read one frame. A clean end of stream before the first header byte is `Closed`.
    pub fn read_from(r: &mut impl Read) -> Result<Frame, ProtoError> {
        let mut head = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match r.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Err(ProtoError::Closed),
                Ok(0) => return Err(ProtoError::Incomplete(HEADER_LEN - got)),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let h = decode_header(&head)?;
        let mut meta = vec![0u8; h.meta_len];
        let mut data = vec![0u8; h.data_len];
        r.read_exact(&mut meta).map_err(eof_is_incomplete)?;
        r.read_exact(&mut data).map_err(eof_is_incomplete)?;
        Ok(Frame::new(h.kind, meta, data))
    }

    pub fn write_to(&self, w: &mut impl Write) -> Result<(), ProtoError> {
        w.write_all(&self.encode())?;
        w.flush()?;
        Ok(())
    }
}

fn eof_is_incomplete(e: std::io::Error) -> ProtoError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ProtoError::Incomplete(0)
    } else {
        ProtoError::Io(e)
    }
}

/// A client's request: the JSON part of a request frame, tagged by `"op"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The pager's `stats()` snapshot (open to everyone). With `frag`, each device's
    /// fragmentation too (a walk of its free list: ask only when it is shown).
    Stats {
        #[serde(default)]
        frag: bool,
    },
    /// The devices of the daemon's config file (open to everyone).
    Config,
    /// Swap on a device (root or the daemon's uid).
    SwapOn {
        path: String,
        priority: Option<i32>,
        #[serde(default)]
        discard: bool,
    },
    /// Move data off a device and detach it (root or the daemon's uid). `force` removes a
    /// failed device, dropping the pages it held (absent from older clients: false).
    SwapOff {
        path: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
    },
    /// Change a live tunable (root or the daemon's uid).
    Set { name: String, value: u64 },
    /// Create an object owned by the caller's uid. Named objects (with a `handle`) outlive
    /// the connection; anonymous ones are freed when it closes.
    Create {
        #[serde(default)]
        handle: Option<String>,
    },
    /// Free an object and its swap.
    Destroy { object: u64 },
    /// Page out `count` pages from `pindex`; the frame's data holds them.
    PutPages {
        object: u64,
        pindex: u64,
        count: u32,
        #[serde(default)]
        sync: bool,
    },
    /// Page in `count` pages from `pindex`.
    GetPages {
        object: u64,
        pindex: u64,
        count: u32,
    },
    /// Whether swap holds a page, and how many contiguous neighbours it has.
    HasPage { object: u64, pindex: u64 },
    /// Drop the swap copies of `count` pages from `pindex` (the seed's
    /// `swap_pager_freespace`: the caller holds those pages again, swap need not).
    FreeSpace {
        object: u64,
        pindex: u64,
        count: u64,
    },
    /// Wait for the async puts in flight of `object` (of every object this connection
    /// created, without one), then report the pages whose async writes failed on every swap
    /// area since the last `sync` — the way `fsync` reports write-back errors. Each failure
    /// is reported once; reads of those pages answer `error` until they are written again.
    Sync {
        #[serde(default)]
        object: Option<u64>,
    },
    /// What a program run with `swapctl run` says about itself (its preload library sends
    /// it about once a second on the connection that created its objects): the daemon
    /// shows the connection as a run, with the peer's pid and uid, until it closes. Open to
    /// everyone; the figures are shown, never trusted.
    Report(ProcessReport),
}

impl Request {
    /// Whether only root or the daemon's own uid may send it.
    pub fn is_privileged(&self) -> bool {
        matches!(
            self,
            Request::SwapOn { .. } | Request::SwapOff { .. } | Request::Set { .. }
        )
    }

    /// Whether it moves page data (put, get, has, free): the work the daemon is for, never
    /// paced. Everything else is a control request.
    pub fn is_page_transfer(&self) -> bool {
        matches!(
            self,
            Request::PutPages { .. }
                | Request::GetPages { .. }
                | Request::HasPage { .. }
                | Request::FreeSpace { .. }
                | Request::Sync { .. }
        )
    }

    /// The request's `op` name, for log lines (never a peer's strings).
    pub fn op(&self) -> &'static str {
        match self {
            Request::Stats { .. } => "stats",
            Request::Config => "config",
            Request::SwapOn { .. } => "swap_on",
            Request::SwapOff { .. } => "swap_off",
            Request::Set { .. } => "set",
            Request::Create { .. } => "create",
            Request::Destroy { .. } => "destroy",
            Request::PutPages { .. } => "put_pages",
            Request::GetPages { .. } => "get_pages",
            Request::HasPage { .. } => "has_page",
            Request::FreeSpace { .. } => "free_space",
            Request::Sync { .. } => "sync",
            Request::Report(_) => "report",
        }
    }

    pub fn frame(&self, data: Vec<u8>) -> Frame {
        // Serializing a plain enum of strings and integers cannot fail.
        let meta = serde_json::to_vec(self).unwrap_or_default();
        Frame::new(FrameKind::Request, meta, data)
    }

    /// Decode a request frame's JSON. Unknown ops are told apart from malformed JSON so the
    /// client of a newer swapctl learns which request this daemon lacks.
    pub fn decode(frame: &Frame) -> Result<Request, ProtoError> {
        if frame.kind != FrameKind::Request {
            return Err(ProtoError::Malformed(
                "a reply frame sent as a request".into(),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&frame.meta)
            .map_err(|e| ProtoError::Malformed(e.to_string()))?;
        let op = value
            .get("op")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ProtoError::Malformed("no \"op\" string".into()))?
            .to_owned();
        if !KNOWN_OPS.contains(&op.as_str()) {
            return Err(ProtoError::Unknown(op));
        }
        serde_json::from_value(value).map_err(|e| ProtoError::Malformed(format!("{op}: {e}")))
    }
}

const KNOWN_OPS: &[&str] = &[
    "stats",
    "config",
    "swap_on",
    "swap_off",
    "set",
    "create",
    "destroy",
    "put_pages",
    "get_pages",
    "has_page",
    "free_space",
    "sync",
    "report",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Malformed,
    TooLarge,
    UnknownRequest,
    Version,
    Permission,
    NotFound,
    Failed,
    /// Over a per-uid quota (objects, handle length, connections): see `docs/protocol.md`.
    Quota,
}

/// Why a put's `fail` pages failed, when it is not a full swap space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// The uid's `max_swap_pages_per_uid` is reached.
    Quota,
}

/// What one uid holds of the daemon, against its quotas (`swapctl status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidUsage {
    pub uid: u32,
    pub connections: u32,
    /// `None`: exempt (root and the daemon's user).
    pub max_connections: Option<u32>,
    pub objects: u32,
    pub max_objects: u32,
    pub swap_pages: u64,
    /// `None`: unlimited.
    pub max_swap_pages: Option<u64>,
}

/// The result of paging out one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PutStatus {
    /// Written (sync) or queued (async).
    Ok,
    /// No swap space.
    Fail,
    /// I/O error; the page was not stored.
    Error,
}

/// The result of paging in one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GetStatus {
    Ok,
    /// Swap holds no copy of the page (its data part is zeroes).
    Absent,
    /// The read failed (its data part is zeroes, never passed off as the page).
    Error,
}

/// Why one page of a `get` reply is `error`: the pager's one line (the device, the block,
/// the operation and the cause: errno or NBD error, checksum mismatch, lost write...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageError {
    pub pindex: u64,
    pub error: String,
}

/// Most runs one `synced` reply carries (its JSON stays far below [`MAX_META`]); the rest
/// wait for the next `sync`, and `more` says so.
pub const MAX_SYNC_RUNS: usize = 2048;

/// `count` pages from `pindex` of `object` whose async writes were lost (a `synced` reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRun {
    pub object: u64,
    pub pindex: u64,
    pub count: u64,
}

/// Pages ascending (each once) as runs of consecutive pages.
pub fn lost_runs(object: u64, pages: &[u64]) -> Vec<LostRun> {
    let mut out: Vec<LostRun> = Vec::new();
    for &p in pages {
        match out.last_mut() {
            Some(r) if r.pindex + r.count == p => r.count += 1,
            _ => out.push(LostRun {
                object,
                pindex: p,
                count: 1,
            }),
        }
    }
    out
}

/// A config file device as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigDevice {
    pub path: String,
    pub priority: i32,
    pub discard: bool,
    pub noauto: bool,
}

/// The daemon's answer: the JSON part of a reply frame, tagged by `"reply"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Ok,
    Error {
        kind: ErrorKind,
        message: String,
    },
    Stats {
        stats: Box<pager::PagerStats>,
        /// Per-uid usage: every uid's for root, the asker's own for anyone else.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        uids: Vec<UidUsage>,
        /// The programs running on the swap space (`swapctl run`), by pid: every one for
        /// root, the asker's own uid's for anyone else. Absent from older daemons.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        processes: Vec<ProcessUsage>,
    },
    Config {
        devices: Vec<ConfigDevice>,
    },
    /// A number: the tunable's value in force, or the pages a swapoff lost. `why`: what
    /// lost them (the area's last error), on a swapoff that lost any.
    Value {
        value: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    Object {
        object: u64,
    },
    Put {
        pages: Vec<PutStatus>,
        /// Set when pages failed for another reason than a full swap space.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<FailReason>,
    },
    /// Followed by `pages.len()` pages of data. `errors`: why each `error` page failed
    /// (absent when none did).
    Get {
        pages: Vec<GetStatus>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<PageError>,
    },
    Has {
        has: bool,
        before: u64,
        after: u64,
    },
    /// The answer to `sync`: the pages whose async writes failed since the last `sync`, as
    /// runs (at most [`MAX_SYNC_RUNS`]); `more`: further runs wait for the next `sync`.
    Synced {
        lost: Vec<LostRun>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        more: bool,
    },
}

impl Reply {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }

    pub fn frame(&self, data: Vec<u8>) -> Frame {
        let meta = serde_json::to_vec(self).unwrap_or_default();
        Frame::new(FrameKind::Reply, meta, data)
    }

    pub fn decode(frame: &Frame) -> Result<Reply, ProtoError> {
        if frame.kind != FrameKind::Reply {
            return Err(ProtoError::Malformed("expected a reply frame".into()));
        }
        serde_json::from_slice(&frame.meta).map_err(|e| ProtoError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn any_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            any::<bool>().prop_map(|frag| Request::Stats { frag }),
            Just(Request::Config),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(object, pindex, count)| {
                Request::FreeSpace {
                    object,
                    pindex,
                    count,
                }
            }),
            (".{0,40}", any::<Option<i32>>(), any::<bool>()).prop_map(
                |(path, priority, discard)| {
                    Request::SwapOn {
                        path,
                        priority,
                        discard,
                    }
                }
            ),
            ".{0,40}".prop_map(|path| Request::SwapOff { path, force: false }),
            (".{0,20}", any::<u64>()).prop_map(|(name, value)| Request::Set { name, value }),
            proptest::option::of(".{0,20}").prop_map(|handle| Request::Create { handle }),
            any::<u64>().prop_map(|object| Request::Destroy { object }),
            (any::<u64>(), any::<u64>(), any::<u32>(), any::<bool>()).prop_map(
                |(object, pindex, count, sync)| Request::PutPages {
                    object,
                    pindex,
                    count,
                    sync
                }
            ),
            (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(object, pindex, count)| {
                Request::GetPages {
                    object,
                    pindex,
                    count,
                }
            }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(object, pindex)| Request::HasPage { object, pindex }),
            any::<Option<u64>>().prop_map(|object| Request::Sync { object }),
            (".{0,40}", any::<[u64; 7]>()).prop_map(|(command, n)| {
                Request::Report(ProcessReport {
                    command,
                    resident_pages: n[0],
                    limit_pages: n[1],
                    faults: n[2],
                    major_faults: n[3],
                    pages_in: n[4],
                    pages_out: n[5],
                    read_errors: n[6],
                })
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok((frame, used)) = Frame::decode(&bytes) {
                prop_assert!(used <= bytes.len());
                let _ = Request::decode(&frame);
                let _ = Reply::decode(&frame);
            }
            let _ = Frame::read_from(&mut &bytes[..]);
        }

        #[test]
        fn a_valid_header_with_garbage_json_never_panics(
            meta in proptest::collection::vec(any::<u8>(), 0..300),
            kind in 0u16..4,
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
            bytes.extend_from_slice(&kind.to_le_bytes());
            bytes.extend_from_slice(&(meta.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&0u32.to_le_bytes());
            bytes.extend_from_slice(&meta);
            if let Ok((frame, _)) = Frame::decode(&bytes) {
                let _ = Request::decode(&frame);
                let _ = Reply::decode(&frame);
            }
        }

        #[test]
        fn requests_survive_encode_and_decode(req in any_request(), pages in 0usize..3) {
            let data = vec![0xa5u8; pages * PAGE_SIZE];
            let bytes = req.frame(data.clone()).encode();
            let (frame, used) = Frame::decode(&bytes).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(&frame.data, &data);
            prop_assert_eq!(Request::decode(&frame).unwrap(), req);
        }

        #[test]
        fn every_truncation_is_incomplete_not_a_panic(req in any_request(), cut in 0usize..100) {
            let bytes = req.frame(Vec::new()).encode();
            let cut = cut.min(bytes.len().saturating_sub(1));
            prop_assert!(matches!(Frame::decode(&bytes[..cut]), Err(ProtoError::Incomplete(_))));
        }
    }

    fn header(version: u16, meta_len: u32, data_len: u32) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&version.to_le_bytes());
        h[6..8].copy_from_slice(&1u16.to_le_bytes());
        h[8..12].copy_from_slice(&meta_len.to_le_bytes());
        h[12..16].copy_from_slice(&data_len.to_le_bytes());
        h
    }

    #[test]
    fn another_version_is_named_before_lengths_are_checked() {
        let err = decode_header(&header(2, u32::MAX, u32::MAX)).unwrap_err();
        assert!(matches!(err, ProtoError::Version { got: 2 }));
        assert_eq!(
            err.to_string(),
            "peer speaks protocol version 2, this swapctl speaks 1"
        );
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        let err = decode_header(&header(1, MAX_META as u32 + 1, 0)).unwrap_err();
        assert!(matches!(err, ProtoError::TooLarge { .. }));
        let err = decode_header(&header(1, 0, u32::MAX)).unwrap_err();
        assert!(matches!(err, ProtoError::TooLarge { .. }));
        assert!(!err.is_recoverable());
    }

    #[test]
    fn unknown_ops_are_told_apart_from_malformed_json() {
        let f = Frame::new(
            FrameKind::Request,
            br#"{"op":"format_disk"}"#.to_vec(),
            vec![],
        );
        assert!(matches!(Request::decode(&f), Err(ProtoError::Unknown(op)) if op == "format_disk"));
        let f = Frame::new(
            FrameKind::Request,
            br#"{"op":"set","name":1}"#.to_vec(),
            vec![],
        );
        assert!(matches!(Request::decode(&f), Err(ProtoError::Malformed(_))));
        let f = Frame::new(FrameKind::Request, b"{not json".to_vec(), vec![]);
        assert!(Request::decode(&f).unwrap_err().is_recoverable());
    }

    #[test]
    fn lost_pages_become_runs_and_a_sync_reply_round_trips() {
        let runs = lost_runs(7, &[1, 2, 3, 9, 11, 12]);
        let want = |pindex, count| LostRun {
            object: 7,
            pindex,
            count,
        };
        assert_eq!(runs, vec![want(1, 3), want(9, 1), want(11, 2)]);
        assert!(lost_runs(7, &[]).is_empty());
        let r = Reply::Synced {
            lost: runs,
            more: true,
        };
        let (f, _) = Frame::decode(&r.frame(vec![]).encode()).unwrap();
        assert_eq!(Reply::decode(&f).unwrap(), r);
        // The largest reply stays well inside a frame.
        let big = Reply::Synced {
            lost: vec![
                LostRun {
                    object: u64::MAX,
                    pindex: MAX_PINDEX,
                    count: MAX_PINDEX,
                };
                MAX_SYNC_RUNS
            ],
            more: true,
        };
        assert!(big.frame(vec![]).meta.len() < MAX_META);
        let f = Frame::new(FrameKind::Request, br#"{"op":"sync"}"#.to_vec(), vec![]);
        assert_eq!(Request::decode(&f).unwrap(), Request::Sync { object: None });
    }

    #[test]
    fn a_report_takes_missing_and_new_fields_and_refuses_wrong_types() {
        let decode = |json: &str| {
            Request::decode(&Frame::new(
                FrameKind::Request,
                json.as_bytes().to_vec(),
                vec![],
            ))
        };
        // An older preload leaves fields out, a newer one adds some: both are taken.
        let r = decode(r#"{"op":"report","command":"sort big.txt","faults":3,"later":1}"#);
        assert_eq!(
            r.unwrap(),
            Request::Report(ProcessReport {
                command: "sort big.txt".into(),
                faults: 3,
                ..Default::default()
            })
        );
        for bad in [
            r#"{"op":"report","faults":"many"}"#,
            r#"{"op":"report","faults":-1}"#,
            r#"{"op":"report","command":7}"#,
        ] {
            let e = decode(bad).unwrap_err();
            assert!(matches!(e, ProtoError::Malformed(_)), "{bad}: {e}");
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
        // Without runs the reply is what an older daemon sends (no `processes`), and such a
        // reply decodes with none.
        let old = Reply::Stats {
            stats: Box::default(),
            uids: vec![],
            processes: vec![],
        };
        let f = old.frame(vec![]);
        assert!(!String::from_utf8_lossy(&f.meta).contains("processes"));
        assert_eq!(Reply::decode(&f).unwrap(), old);
    }

    #[test]
    fn replies_round_trip() {
        let r = Reply::Stats {
            stats: Box::default(),
            uids: vec![UidUsage {
                uid: 1000,
                max_swap_pages: Some(3),
                ..Default::default()
            }],
            processes: vec![ProcessUsage {
                pid: 42,
                uid: 1000,
                command: "postgres -D /var/lib/db".into(),
                swapped_pages: 7,
                ..Default::default()
            }],
        };
        let (f, _) = Frame::decode(&r.frame(vec![]).encode()).unwrap();
        assert_eq!(Reply::decode(&f).unwrap(), r);
        let r = Reply::error(ErrorKind::Permission, "on needs root");
        let (f, _) = Frame::decode(&r.frame(vec![]).encode()).unwrap();
        assert_eq!(Reply::decode(&f).unwrap(), r);
    }
}
