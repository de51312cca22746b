//! NBD URIs (the NBD URI standard, as libnbd and qemu read them) and our own query
//! parameters for timeouts and connections.
//!
//! Accepted: `nbd://HOST[:PORT]/EXPORT`, `nbds://[USER@]HOST...` (TLS; USER names the PSK), `nbd+unix:///EXPORT?socket=PATH`
//! and `nbds+unix://...`; IPv6 hosts in brackets. Our parameters (`connect-timeout`,
//! `request-timeout`, `read-wait`, `dead-after`: seconds, fractions allowed; `connections`:
//! a count)
//! are taken out before libnbd sees the URI; every other query parameter (`socket`,
//! `tls-psk-file`, `tls-username`, ...) is passed on untouched.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

/// The schemes we accept, with whether they carry a Unix socket.
const SCHEMES: [(&str, bool); 4] = [
    ("nbd://", false),
    ("nbds://", false),
    ("nbd+unix://", true),
    ("nbds+unix://", true),
];

/// The NBD port when the URI gives none.
const DEFAULT_PORT: u16 = 10809;

/// Whether `path` is an NBD URI rather than a path (it starts with one of the schemes).
pub fn is_uri(path: &Path) -> bool {
    path.to_str()
        .is_some_and(|s| SCHEMES.iter().any(|(scheme, _)| s.starts_with(scheme)))
}

/// How to talk to one export, and our settings for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbdUri {
    /// The URI handed to libnbd: as given, without our own parameters.
    pub(crate) libnbd: String,
    /// `host:port` or the socket path: with `export`, the export's identity.
    pub(crate) server: String,
    pub(crate) export: String,
    /// `server` is a Unix socket path.
    pub(crate) unix: bool,
    pub tuning: NbdTuning,
}

/// Timeouts and connections of one remote area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NbdTuning {
    /// How long a connection (TCP or Unix connect, handshake) may take.
    pub connect_timeout: Duration,
    /// How long one request may stay unanswered before its connection is taken as broken:
    /// it is closed, its requests fail, and it reconnects.
    pub request_timeout: Duration,
    /// How long a read waits for a connection that broke to be made again, counted from the
    /// break: past it, reads fail at once (`ENOTCONN`) until the connection is back. Writes
    /// never wait: they fail at once and the pager writes them elsewhere. With
    /// `request_timeout` it bounds how long a client's read of a page on a lost server can
    /// take; both stay well below a client's reply timeout (60 s for page transfers).
    pub read_wait: Duration,
    /// How long the server may stay unreachable before the area counts as gone (its I/O
    /// then fails as `Vanished`, which marks it failed in the pager).
    pub dead_after: Duration,
    /// The most connections (used only when the server allows multi-conn).
    pub connections: usize,
}

impl Default for NbdTuning {
    fn default() -> NbdTuning {
        NbdTuning {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            read_wait: Duration::from_secs(10),
            dead_after: Duration::from_secs(120),
            connections: 4,
        }
    }
}

/// Why a URI was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UriError(pub String);

impl NbdUri {
    /// Parses `text`, an NBD URI.
    pub fn parse(text: &str) -> Result<NbdUri, UriError> {
        let (scheme, unix) = SCHEMES
            .iter()
            .find(|(scheme, _)| text.starts_with(scheme))
            .copied()
            .ok_or_else(|| {
                bad(
                    text,
                    "expected nbd://, nbds://, nbd+unix:// or nbds+unix://",
                )
            })?;
        let rest = &text[scheme.len()..];
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, export) = match rest.split_once('/') {
            Some((a, e)) => (a, e),
            None => (rest, ""),
        };
        let query = Query::parse(text, query)?;
        let server = if unix {
            unix_server(text, authority, query.socket)?
        } else {
            tcp_server(text, authority)?
        };
        let mut libnbd = format!("{scheme}{rest}");
        if !query.passed.is_empty() {
            libnbd.push('?');
            libnbd.push_str(&query.passed.join("&"));
        }
        Ok(NbdUri {
            libnbd,
            server,
            export: export.to_owned(),
            unix,
            tuning: query.tuning,
        })
    }

    /// The URI libnbd connects to (ours without our own parameters).
    pub fn connect_uri(&self) -> &str {
        &self.libnbd
    }

    /// A number for the export (server and export name, whatever the scheme or settings):
    /// two URIs naming one export the same way have the same key. See [`NbdUri::identity`]
    /// for the keys that also see through other spellings.
    pub fn storage_key(&self) -> u64 {
        key(&self.server, &self.export)
    }

    /// The keys of the export whatever spelling the URI uses: the export name
    /// percent-decoded; a TCP server by every address its host resolves to (an IPv4-mapped
    /// IPv6 address as the IPv4 one, so `localhost`, `127.0.0.1`, `127.1` and
    /// `[::ffff:127.0.0.1]` meet), or its host text where it does not resolve; a socket by
    /// its canonical path (symlinks, `//` and `/./` resolved), or lexically cleaned where it
    /// does not exist. Two URIs of one export share a key. Resolves names: call before
    /// connecting, not on a hot path.
    pub fn identity(&self) -> Vec<u64> {
        let export = percent_decode(&self.export);
        if self.unix {
            return vec![key(
                &format!("unix:{}", canonical_socket(&self.server)),
                &export,
            )];
        }
        let (host, port) = match self.server.rsplit_once(':') {
            Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
            None => (self.server.as_str(), ""),
        };
        let port: u16 = port.parse().unwrap_or(DEFAULT_PORT);
        let mut keys: Vec<u64> = match (host, port).to_socket_addrs() {
            Ok(addrs) => addrs
                .map(|a| {
                    let ip = match a.ip() {
                        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                        v4 => v4,
                    };
                    key(&format!("tcp:{}", SocketAddr::new(ip, port)), &export)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        if keys.is_empty() {
            keys.push(key(
                &format!("tcp:{}:{port}", host.to_ascii_lowercase()),
                &export,
            ));
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

impl fmt::Display for NbdUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.libnbd)
    }
}

/// A number for `server` and `export`. `DefaultHasher::new()` has fixed keys: the same
/// text always gives the same number.
fn key(server: &str, export: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    server.hash(&mut h);
    export.hash(&mut h);
    h.finish()
}

/// `%XX` sequences decoded (the URI standard's export name); a malformed one is kept as
/// it is, as is a decoding that is not UTF-8.
fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// A socket path as one spelling: canonical where it exists, else with empty and `.`
/// components dropped.
fn canonical_socket(path: &str) -> String {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p.display().to_string();
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// The refusal of `text`, saying why.
fn bad(text: &str, why: &str) -> UriError {
    UriError(format!("bad NBD URI `{text}`: {why}"))
}

/// A URI's query: our own settings taken out, the rest passed on to libnbd.
struct Query<'a> {
    tuning: NbdTuning,
    passed: Vec<&'a str>,
    socket: Option<String>,
}

impl<'a> Query<'a> {
    fn parse(text: &str, query: Option<&'a str>) -> Result<Query<'a>, UriError> {
        let mut out = Query {
            tuning: NbdTuning::default(),
            passed: Vec::new(),
            socket: None,
        };
        for param in query.into_iter().flat_map(|q| q.split('&')) {
            if param.is_empty() {
                continue;
            }
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            let secs = || {
                value
                    .trim_end_matches('s')
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| bad(text, &format!("{key} wants seconds, got `{value}`")))
            };
            match key {
                "connect-timeout" => out.tuning.connect_timeout = secs()?,
                "request-timeout" => out.tuning.request_timeout = secs()?,
                "read-wait" => out.tuning.read_wait = secs()?,
                "dead-after" => out.tuning.dead_after = secs()?,
                "connections" => {
                    out.tuning.connections = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| bad(text, "connections wants 1 to 64"))?;
                }
                _ => {
                    if key == "socket" {
                        out.socket = Some(value.to_owned());
                    }
                    out.passed.push(param);
                }
            }
        }
        Ok(out)
    }
}

/// The server of an `nbd+unix` URI: its socket path (and no host).
fn unix_server(text: &str, authority: &str, socket: Option<String>) -> Result<String, UriError> {
    if !authority.is_empty() {
        return Err(bad(
            text,
            "a Unix socket URI has no host (nbd+unix:///EXPORT?socket=PATH)",
        ));
    }
    socket
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(text, "nbd+unix needs ?socket=PATH"))
}

/// The server of a TCP URI as `host:port`, the port defaulted.
fn tcp_server(text: &str, authority: &str) -> Result<String, UriError> {
    if authority.is_empty() {
        return Err(bad(text, "no host"));
    }
    // `user@`: the TLS PSK user name (libnbd reads it); not part of the identity.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.is_empty() {
        return Err(bad(text, "no host"));
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        let (host, port) = authority.rsplit_once(':').unwrap_or((authority, ""));
        let port: u16 = port.parse().map_err(|_| bad(text, "bad port"))?;
        Ok(format!("{host}:{port}"))
    } else {
        Ok(format!("{authority}:{DEFAULT_PORT}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tcp_with_and_without_port() {
        let a = NbdUri::parse("nbd://10.0.0.1/swap").unwrap();
        assert_eq!(a.server, "10.0.0.1:10809");
        assert_eq!(a.export, "swap");
        let b = NbdUri::parse("nbd://10.0.0.1:10809/swap?request-timeout=5").unwrap();
        assert_eq!(a.storage_key(), b.storage_key());
        assert_eq!(b.connect_uri(), "nbd://10.0.0.1:10809/swap");
        assert_eq!(b.tuning.request_timeout, Duration::from_secs(5));
        let c = NbdUri::parse("nbd://10.0.0.1/other").unwrap();
        assert_ne!(a.storage_key(), c.storage_key());
        let v6 = NbdUri::parse("nbd://[::1]:2000/x").unwrap();
        assert_eq!(v6.server, "[::1]:2000");
        assert_eq!(NbdUri::parse("nbd://[::1]/").unwrap().server, "[::1]:10809");
    }

    #[test]
    fn unix_socket_and_passed_parameters() {
        let u =
            NbdUri::parse("nbd+unix:///e?socket=/run/s.sock&connections=2&dead-after=1.5").unwrap();
        assert_eq!(u.server, "/run/s.sock");
        assert_eq!(u.connect_uri(), "nbd+unix:///e?socket=/run/s.sock");
        assert_eq!(u.tuning.connections, 2);
        assert_eq!(u.tuning.dead_after, Duration::from_millis(1500));
        let tls = NbdUri::parse("nbds://alice@h/e?tls-psk-file=/k&connect-timeout=3s").unwrap();
        assert_eq!(tls.connect_uri(), "nbds://alice@h/e?tls-psk-file=/k");
        assert_eq!(tls.server, "h:10809");
        assert_eq!(tls.tuning.connect_timeout, Duration::from_secs(3));
    }

    /// Every spelling of one export has a key in common; another export or server none.
    #[test]
    fn aliases_of_one_export_share_an_identity() {
        let dir = std::env::temp_dir().join(format!("swapkit-uri-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s.sock");
        std::fs::write(&sock, b"").unwrap();
        let link = dir.join("link.sock");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&sock, &link).unwrap();
        let d = dir.display();
        let same = |a: &str, b: &str| {
            let (x, y) = (
                NbdUri::parse(a).unwrap().identity(),
                NbdUri::parse(b).unwrap().identity(),
            );
            x.iter().any(|k| y.contains(k))
        };
        for alias in [
            "nbd://localhost:7000/swap",
            "nbd://127.1:7000/swap",
            "nbd://[::ffff:127.0.0.1]:7000/swap",
            "nbd://127.0.0.1:7000/%73wap",
            "nbd://127.0.0.1:7000/swap?connections=1",
        ] {
            assert!(same("nbd://127.0.0.1:7000/swap", alias), "{alias}");
        }
        for alias in [
            format!("nbd+unix:///swap?socket={d}//s.sock"),
            format!("nbd+unix:///swap?socket={d}/./s.sock"),
            format!("nbd+unix:///swap?socket={d}/link.sock"),
            format!("nbd+unix:///%73wap?socket={d}/s.sock"),
        ] {
            assert!(
                same(&format!("nbd+unix:///swap?socket={d}/s.sock"), &alias),
                "{alias}"
            );
        }
        for other in [
            "nbd://127.0.0.1:7001/swap",
            "nbd://127.0.0.2:7000/swap",
            "nbd://127.0.0.1:7000/swap2",
        ] {
            assert!(!same("nbd://127.0.0.1:7000/swap", other), "{other}");
        }
        assert_eq!(percent_decode("a%2fb%zz%4"), "a/b%zz%4");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refusals() {
        for bad in [
            "/dev/loop0",
            "nbd://",
            "nbd:///x",
            "nbd://h:99999/x",
            "nbd+unix:///x",
            "nbd+unix://h/x?socket=/s",
            "nbd://h/x?request-timeout=soon",
            "nbd://h/x?connections=0",
            "nbd://u@/x",
        ] {
            assert!(NbdUri::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(is_uri(Path::new("nbd+unix:///x?socket=/s")));
        assert!(!is_uri(Path::new("/tmp/nbd://x")));
    }
}
