//! The daemon's log of what goes wrong with the storage: areas that turn failing or fail,
//! swap running full, and pages that fail their checksum on a read.
//!
//! Pager events ([`pager::PagerEvent`]) come from a subscription a thread of its own drains
//! ([`watch`]); each is one line, once. Corrupt reads are seen where the daemon gets the
//! error back ([`corrupt_read`]): each is a line, but per device at most
//! [`log::BURST`] per [`log::WINDOW`] (the limiter of
//! the daemon's log, keyed by device instead of uid), the rest summed up in one line when
//! the window ends, so a truncated area read in a loop costs a few lines, not thousands.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use pager::{DeviceId, Pager, PagerEvent};

use super::log::{self, Limiter, log_debug, log_warn};

fn summary_line(device: &str, held: u64) -> String {
    format!(
        "{device}: ... {} more corrupt pages (checksum mismatch)",
        log::thousands(held)
    )
}

static CORRUPT: Mutex<Option<Limiter>> = Mutex::new(None);

/// Failed I/Os, limited per device like corrupt reads.
static IO_ERRORS: Mutex<Option<Limiter>> = Mutex::new(None);

fn io_summary_line(device: &str, held: u64) -> String {
    format!("{device}: ... {} more I/O errors", log::thousands(held))
}

/// Log a failed I/O of swap device `id` with its cause, rate-limited per device.
fn io_error(id: u32, path: &str, error: &str) {
    let name = format!("swap device {id} ({path})");
    let (pass, ended) = IO_ERRORS.lock().get_or_insert_with(Limiter::default).admit(
        id,
        || name.clone(),
        Instant::now(),
    );
    if let Some((label, held)) = ended {
        log_warn!("{}", io_summary_line(&label, held));
    }
    if pass {
        log_warn!("{name}: I/O error: {error}");
    }
}

/// "swap device 2 (/dev/loop5)", or the id alone once the area is gone.
fn device_name(pager: &Pager, device: DeviceId) -> String {
    match pager.area(device) {
        Some(a) => format!("swap device {device} ({})", a.path().display()),
        None => format!("swap device {device}"),
    }
}

/// Log a read of `block` on `device` whose checksum did not match (the caller got an error,
/// never the bytes), rate-limited per device.
pub fn corrupt_read(pager: &Pager, device: DeviceId, block: u64) {
    let name = device_name(pager, device);
    let (pass, ended) = CORRUPT.lock().get_or_insert_with(Limiter::default).admit(
        device.0,
        || name.clone(),
        Instant::now(),
    );
    if let Some((label, held)) = ended {
        log_warn!("{}", summary_line(&label, held));
    }
    if pass {
        log_warn!(
            "{name}: block {block} failed its checksum on a read (the storage returned other bytes than were written); the client got an error, not the data"
        );
    }
}

fn flush_corrupt(all: bool) {
    let lines = match CORRUPT.lock().as_mut() {
        Some(l) => l.flush(Instant::now(), all),
        None => Vec::new(),
    };
    for (label, held) in lines {
        log_warn!("{}", summary_line(&label, held));
    }
    let lines = match IO_ERRORS.lock().as_mut() {
        Some(l) => l.flush(Instant::now(), all),
        None => Vec::new(),
    };
    for (label, held) in lines {
        log_warn!("{}", io_summary_line(&label, held));
    }
}

/// The line for one pager event, in plain words; `None` for what needs no line.
pub fn event_line(e: &PagerEvent) -> Option<(log::Level, String)> {
    use log::Level::{Info, Warn};
    Some(match e {
        PagerEvent::DeviceFailing { id, path, errors } => (
            Warn,
            format!(
                "swap device {id} ({path}) is failing: {errors} writes in a row failed; it gets no new pages, what it holds is still read, `swapctl off {path}` drains it"
            ),
        ),
        PagerEvent::DeviceRevived { id, path } => (
            Info,
            format!("swap device {id} ({path}) is back in service: its connection was made again"),
        ),
        PagerEvent::DeviceDisconnected { id, path, cause } => (
            Warn,
            format!(
                "swap device {id} ({path}) lost its connection: {cause}; reconnecting: writes go to other areas, reads of its pages wait up to its read-wait, then fail"
            ),
        ),
        PagerEvent::DeviceReconnected { id, path } => (
            Info,
            format!("swap device {id} ({path}) is connected again"),
        ),
        PagerEvent::DeviceShrunk {
            id,
            path,
            size_bytes,
        } => (
            Warn,
            format!(
                "swap device {id} ({path}) is failing: its backing file was cut to {size_bytes} bytes; the pages past it are lost, it gets no new pages, what is before the cut still reads and `swapctl off {path}` moves it"
            ),
        ),
        PagerEvent::IoError { .. } => return None,
        PagerEvent::DeviceFailed { id, path } => (
            Warn,
            format!(
                "swap device {id} ({path}) failed: its pages read as errors, writes go to other areas"
            ),
        ),
        PagerEvent::DeviceRemoved {
            id,
            path,
            moved,
            lost,
        } if *lost > 0 => (
            Warn,
            format!(
                "swap device {id} ({path}) removed: {moved} pages moved, {lost} pages could not be read and are lost (reads of them fail)"
            ),
        ),
        PagerEvent::Full => (Warn, "swap space is full: page-outs fail".into()),
        PagerEvent::NotFull { free } => (
            Info,
            format!("swap space has room again ({free} pages free)"),
        ),
        PagerEvent::AlmostFull { free } => (
            Warn,
            format!("swap space is almost full ({free} pages free)"),
        ),
        PagerEvent::NotAlmostFull { .. }
        | PagerEvent::DeviceAdded { .. }
        | PagerEvent::DeviceRemoved { .. } => return None,
    })
}

/// Log `pager`'s events from now on, from a thread that ends when the pager is dropped.
pub fn watch(pager: &Pager) {
    let events = pager.subscribe();
    let started = std::thread::Builder::new()
        .name("pager-events".into())
        .spawn(move || {
            loop {
                match events.recv_timeout(Duration::from_secs(1)) {
                    Ok(PagerEvent::IoError { id, path, error }) => io_error(id, &path, &error),
                    Ok(e) => {
                        if let Some((l, text)) = event_line(&e) {
                            log::write(l, format_args!("{text}"));
                        }
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
                flush_corrupt(false);
            }
            flush_corrupt(true);
        });
    if let Err(e) = started {
        log_warn!("cannot start the pager event thread ({e}): failing areas are not logged");
    } else {
        log_debug!("logging failing areas and corrupt pages");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::log::{BURST, WINDOW};

    #[test]
    fn corrupt_reads_pass_a_burst_per_device_then_are_summed_up() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let a = || "swap device 3 (/a)".to_string();
        let passed = (0..BURST + 5).filter(|_| l.admit(3, a, t0).0).count();
        assert_eq!(passed, BURST as usize);
        // Another device has its own budget.
        assert!(l.admit(4, || "swap device 4 (/b)".into(), t0).0);
        assert!(l.flush(t0, false).is_empty());
        let (pass, ended) = l.admit(3, a, t0 + WINDOW);
        assert!(pass);
        let (label, held) = ended.unwrap();
        assert_eq!(
            summary_line(&label, held),
            "swap device 3 (/a): ... 5 more corrupt pages (checksum mismatch)"
        );
        assert!(l.flush(t0 + WINDOW, true).is_empty());
    }

    #[test]
    fn a_failing_area_is_one_line_that_names_the_way_out() {
        let (l, text) = event_line(&PagerEvent::DeviceFailing {
            id: 2,
            path: "/tmp/x.img".into(),
            errors: 3,
        })
        .unwrap();
        assert_eq!(l, log::Level::Warn);
        assert!(text.contains("is failing") && text.contains("swapctl off /tmp/x.img"));
        assert!(!text.contains('\n'));
        assert!(
            event_line(&PagerEvent::DeviceAdded {
                id: 1,
                path: "/a".into()
            })
            .is_none()
        );
    }
}
