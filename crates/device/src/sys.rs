//! The system calls at the edge: whole-buffer positional I/O and the block-device ioctls.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

nix::ioctl_read!(blk_get_size64, 0x12, 114, u64);
nix::ioctl_read_bad!(blk_ssz_get, nix::request_code_none!(0x12, 104), libc::c_int);
nix::ioctl_read_bad!(blk_ro_get, nix::request_code_none!(0x12, 94), libc::c_int);
nix::ioctl_write_ptr_bad!(blk_discard, nix::request_code_none!(0x12, 119), [u64; 2]);

/// Reads all of `buf` from `offset`, retrying short reads; a read that reaches the end of
/// the device before the buffer is full is an `UnexpectedEof` error, never silent zeroes.
pub(crate) fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => return Err(short("read", done, buf.len())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset`, retrying short writes.
pub(crate) fn write_full(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.write_at(&buf[done..], offset + done as u64) {
            Ok(0) => return Err(short("write", done, buf.len())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error for an I/O that stopped early (end of device).
pub(crate) fn short(op: &str, done: usize, want: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("short {op}: {done} of {want} bytes"),
    )
}

/// Size in bytes of a block device.
pub(crate) fn block_size_bytes(file: &File) -> io::Result<u64> {
    let mut size = 0u64;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid.
    unsafe { blk_get_size64(file.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// Logical block size of a block device: the smallest unit of direct I/O.
pub(crate) fn logical_block_size(file: &File) -> io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which is valid.
    unsafe { blk_ssz_get(file.as_raw_fd(), &mut size) }?;
    Ok(size as u32)
}

/// Whether a block device is read-only (`BLKROGET`).
pub(crate) fn block_read_only(file: &File) -> io::Result<bool> {
    let mut ro: libc::c_int = 0;
    // SAFETY: BLKROGET writes one int through the pointer, which is valid.
    unsafe { blk_ro_get(file.as_raw_fd(), &mut ro) }?;
    Ok(ro != 0)
}

/// Discards `len` bytes at `offset` of a block device (`BLKDISCARD`).
pub(crate) fn discard_block(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let range = [offset, len];
    // SAFETY: BLKDISCARD reads two u64 through the pointer, which is valid.
    unsafe { blk_discard(file.as_raw_fd(), &range) }?;
    Ok(())
}

/// Frees `len` bytes at `offset` of a regular file, keeping its size (`FALLOC_FL_PUNCH_HOLE`).
pub(crate) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate};
    let too_far = || io::Error::from_raw_os_error(libc::EFBIG);
    let offset = i64::try_from(offset).map_err(|_| too_far())?;
    let len = i64::try_from(len).map_err(|_| too_far())?;
    let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    fallocate(file, mode, offset, len)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn a_punched_hole_reads_back_as_zeroes_and_keeps_the_size() -> io::Result<()> {
        let file = tempfile::tempfile()?;
        file.write_all_at(&[0xa5; 3 * 4096], 0)?;
        match punch_hole(&file, 4096, 4096) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(()),
            other => other?,
        }
        assert_eq!(file.metadata()?.len(), 3 * 4096);
        let mut back = [0u8; 3 * 4096];
        read_full(&file, &mut back, 0)?;
        assert!(back[..4096].iter().all(|&b| b == 0xa5));
        assert!(back[4096..8192].iter().all(|&b| b == 0));
        assert!(back[8192..].iter().all(|&b| b == 0xa5));
        Ok(())
    }
}
