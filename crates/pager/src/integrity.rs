//! Page checksums: computed when a page is put, kept in the object's metadata beside its
//! block (`swmeta`), checked on every read.
//!
//! The checksum is CRC32C through the `crc32c` crate, which uses the CPU's CRC32
//! instructions (SSE 4.2 on x86-64, the CRC extension on AArch64) and falls back to
//! software elsewhere: a 4 KiB page costs well under a microsecond, far below its I/O.

use device::PAGE_SIZE;

/// The checksum of one page.
pub(crate) fn page_crc(page: &[u8]) -> u32 {
    crc32c::crc32c(page)
}

/// A device error as the admin reads it, without the area's path (which the caller names):
/// the operation, the page, and the cause with its errno's name (`read at page 12: EIO:
/// Input/output error (os error 5)`).
pub(crate) fn describe(err: &device::DeviceError) -> String {
    use device::DeviceError;
    match err {
        DeviceError::Io {
            op, page, source, ..
        } => format!("{op} at page {page}: {}", device::with_errno(source)),
        DeviceError::Vanished { op, page, .. } => {
            format!("{op} at page {page}: ENXIO: the device vanished")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
pub(crate) fn page_crcs(data: &[u8]) -> Vec<u32> {
    crcs(data, true)
}

/// The checksum of each whole page of `data` (none when `crc` is false): those of a write
/// straight from the caller's memory, computed over the very bytes written.
pub(crate) fn crcs(data: &[u8], crc: bool) -> Vec<u32> {
    if !crc {
        return Vec::new();
    }
    data.chunks_exact(PAGE_SIZE).map(page_crc).collect()
}

/// Copies whole pages `src` into `dst` (the same length) and returns the checksum of each
/// page (none when `crc` is false). Page by page: each page is checksummed right after it
/// is copied, while it is still in the L1 cache, instead of a second pass over the whole
/// cluster once the copy has pushed its start out (issue #13's profile: copy and CRC32C
/// were the pager's own largest costs per GiB).
pub(crate) fn copy_crcs(dst: &mut [u8], src: &[u8], crc: bool) -> Vec<u32> {
    debug_assert_eq!(dst.len(), src.len());
    if !crc {
        dst.copy_from_slice(src);
        return Vec::new();
    }
    dst.chunks_exact_mut(PAGE_SIZE)
        .zip(src.chunks_exact(PAGE_SIZE))
        .map(|(d, s)| {
            d.copy_from_slice(s);
            page_crc(d)
        })
        .collect()
}

/// Copies whole pages `src` into `dst` (the same length) and checks each page as
/// [`bad_pages`] does, right after copying it (see [`copy_crcs`]). The check is of the
/// bytes in `dst`, those the caller gets.
pub(crate) fn copy_checked(dst: &mut [u8], src: &[u8], want: &[Option<u32>]) -> Vec<bool> {
    debug_assert_eq!(dst.len(), src.len());
    dst.chunks_exact_mut(PAGE_SIZE)
        .zip(src.chunks_exact(PAGE_SIZE))
        .zip(want)
        .map(|((d, s), want)| {
            d.copy_from_slice(s);
            want.is_some_and(|crc| page_crc(d) != crc)
        })
        .collect()
}

/// Checks the pages of `data` against `want` (one per page; `None`: nothing to check,
/// e.g. a page mapped by `reserve`). Returns, per page, whether it failed.
pub(crate) fn bad_pages(data: &[u8], want: &[Option<u32>]) -> Vec<bool> {
    data.chunks_exact(PAGE_SIZE)
        .zip(want)
        .map(|(page, want)| want.is_some_and(|crc| page_crc(page) != crc))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_fails_the_check_and_an_unchecked_page_never_does() {
        let mut data = vec![7u8; 3 * PAGE_SIZE];
        let crcs: Vec<Option<u32>> = page_crcs(&data).into_iter().map(Some).collect();
        assert_eq!(bad_pages(&data, &crcs), [false, false, false]);
        data[PAGE_SIZE + 100] ^= 1;
        assert_eq!(bad_pages(&data, &crcs), [false, true, false]);
        assert_eq!(
            bad_pages(&data, &[crcs[0], None, crcs[2]]),
            [false, false, false]
        );
        // Copying while checksumming gives the same checksums and the same verdicts.
        let mut copy = vec![0u8; data.len()];
        let fresh = copy_crcs(&mut copy, &data, true);
        assert_eq!(copy, data);
        assert_eq!(fresh, page_crcs(&data));
        assert!(copy_crcs(&mut copy, &data, false).is_empty());
        copy.fill(0);
        assert_eq!(copy_checked(&mut copy, &data, &crcs), [false, true, false]);
        assert_eq!(copy, data);
        // The known CRC32C check value, so the hardware path is the real CRC32C.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }
}
