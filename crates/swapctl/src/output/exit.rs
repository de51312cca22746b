//! The exit status of every command: util-linux `swapoff(8)`'s bits, one table for all of
//! them (`docs/swapctl.md`, and EXIT STATUS in every man page). Bits combine: `off -a` where
//! one device had no room and another went off exits `2 | 4 | 64`... never more than the
//! bits that happened.

use control::client::ClientError;
use control::proto::ErrorKind;

/// Success.
pub const EX_OK: i32 = 0;
/// Not enough free swap elsewhere to move a device's data off (`off`).
pub const EX_NOSPACE: i32 = 2;
/// The operation itself failed: the daemon or the device refused or could not do it.
pub const EX_FAILURE: i32 = 4;
/// Another system error: no daemon, no answer, a broken connection, an I/O error.
pub const EX_SYSERR: i32 = 8;
/// A usage error (bad arguments) or a permission refusal.
pub const EX_USAGE: i32 = 16;
/// With `-a`: every device failed.
pub const EX_ALLERR: i32 = 32;
/// With `-a`: some devices failed, some succeeded.
pub const EX_SOMEOK: i32 = 64;

/// The rows of the table, for `--help`, the man pages and the docs: (status, meaning).
pub const TABLE: [(i32, &str); 7] = [
    (EX_OK, "success"),
    (
        EX_NOSPACE,
        "not enough free swap to move the data off the device",
    ),
    (
        EX_FAILURE,
        "the operation failed (refused by the daemon or the device)",
    ),
    (
        EX_SYSERR,
        "another system error (no daemon, no answer, broken connection, I/O error)",
    ),
    (EX_USAGE, "usage error or permission denied"),
    (EX_ALLERR, "with -a, -A or -U: every device failed"),
    (
        EX_SOMEOK,
        "with -a, -A or -U: some devices failed, others succeeded",
    ),
];

/// The text of [`TABLE`] for `--help`: one line per status.
pub fn help_text() -> String {
    let mut s = String::from("Exit status (bits combine, as in swapoff(8)):\n");
    for (code, what) in TABLE {
        s.push_str(&format!("  {code:>3}  {what}\n"));
    }
    s
}

/// The bit for a failed call to the daemon.
pub fn of_client(e: &ClientError) -> i32 {
    match e {
        ClientError::Permission { .. } => EX_USAGE,
        ClientError::Connect { .. }
        | ClientError::Timeout { .. }
        | ClientError::Proto(_)
        | ClientError::Unexpected(_) => EX_SYSERR,
        ClientError::Daemon { kind, message } => match kind {
            ErrorKind::Permission => EX_USAGE,
            // The pager says so in this form when the other areas cannot take the pages
            // (`PagerError::NotEnoughSpace`); the protocol has no kind of its own for it.
            ErrorKind::Failed if message.contains("not enough free swap") => EX_NOSPACE,
            ErrorKind::Failed | ErrorKind::NotFound | ErrorKind::Quota => EX_FAILURE,
            ErrorKind::Malformed
            | ErrorKind::TooLarge
            | ErrorKind::UnknownRequest
            | ErrorKind::Version => EX_SYSERR,
        },
    }
}

/// Combine per-device results; with `all`, add "all failed" or "some failed" as swapoff -a does.
pub fn combine(bits: i32, failed: usize, total: usize, all: bool) -> i32 {
    let mut s = bits;
    if all && failed > 0 {
        s |= if failed == total {
            EX_ALLERR
        } else {
            EX_SOMEOK
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_some_failed_bits() {
        assert_eq!(combine(EX_FAILURE, 2, 2, true), EX_FAILURE | EX_ALLERR);
        assert_eq!(combine(EX_FAILURE, 1, 2, true), EX_FAILURE | EX_SOMEOK);
        assert_eq!(combine(EX_FAILURE, 1, 1, false), EX_FAILURE);
        assert_eq!(combine(0, 0, 3, true), EX_OK);
    }

    #[test]
    fn no_room_is_its_own_bit() {
        let e = ClientError::Daemon {
            kind: ErrorKind::Failed,
            message: "swapoff /dev/loop0: not enough free swap: need 3, have 1".into(),
        };
        assert_eq!(of_client(&e), EX_NOSPACE);
        let e = ClientError::Daemon {
            kind: ErrorKind::Permission,
            message: "needs root".into(),
        };
        assert_eq!(of_client(&e), EX_USAGE);
    }
}
