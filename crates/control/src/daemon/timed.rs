//! Reading and writing a connection against deadlines, so no peer holds a thread by being
//! slow: a frame must arrive whole within the read timeout once its first byte is there, an
//! idle connection is closed, and a whole reply (not each `write`) must be taken within the
//! write timeout.
//!
//! The socket stays blocking; before each `read`/`write` its `SO_RCVTIMEO`/`SO_SNDTIMEO` is set
//! to the time left, so a peer trickling one byte per timeout cannot stretch the deadline (with
//! a fixed per-call timeout a 256 KiB reply could take twice the limit, or forever).

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// What waiting for the next request found.
#[derive(Debug, PartialEq, Eq)]
pub enum Ready {
    /// Bytes (or the peer's close) to read.
    Readable,
    /// Nothing for the whole idle timeout.
    Idle,
}

/// Wait until `stream` is readable or `idle` has passed. A shut read side (daemon shutdown)
/// or a closed peer counts as readable: the read that follows sees the end.
pub fn wait_readable(stream: &UnixStream, idle: Duration) -> io::Result<Ready> {
    let end = Instant::now() + idle;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Ready::Idle);
        }
        // poll's timeout is an i32 of milliseconds: wait in slices of at most a minute.
        let ms = left.as_millis().clamp(1, 60_000) as u16;
        let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => {}
            Ok(_) => return Ok(Ready::Readable),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "deadline passed")
}

/// A `Read` of `stream` that fails with `TimedOut` once `deadline` has passed.
#[derive(Debug)]
pub struct DeadlineReader<'a> {
    pub stream: &'a UnixStream,
    pub deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        match s.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out()),
            r => r,
        }
    }
}

/// A `Write` of `stream` that fails with `TimedOut` once `deadline` has passed.
#[derive(Debug)]
pub struct DeadlineWriter<'a> {
    pub stream: &'a UnixStream,
    pub deadline: Instant,
}

impl Write for DeadlineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        self.stream.set_write_timeout(Some(left))?;
        let mut s = self.stream;
        match s.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out()),
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether an I/O error is one of our deadlines.
pub fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}
