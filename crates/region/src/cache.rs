//! The inactive cache: one page of bytes per slot, for pages on the inactive list
//! (unmapped from the region, still in memory).
//!
//! The memory is an anonymous mapping of its own (`MAP_NORESERVE`): untouched slots cost
//! nothing, and it is returned to the system the moment the region drops, whoever still
//! holds the region's bookkeeping. Slots are handed out through the page table
//! (`Table::free_slots`, under its lock); whoever took a slot from there owns its bytes
//! until it gives the slot back, so the bytes are read and written without the table lock
//! (a page copy under that lock would stall every fault meanwhile).

use std::io;

use device::PAGE_SIZE;

#[derive(Debug)]
pub(crate) struct SlotCache {
    base: *mut u8,
    slots: u64,
}

// SAFETY: the cache is plain memory; who may touch which slot is decided by slot ownership
// (see the module doc), which the page table hands out under its lock.
unsafe impl Send for SlotCache {}
// SAFETY: as above.
unsafe impl Sync for SlotCache {}

impl SlotCache {
    pub fn new(slots: u64) -> io::Result<SlotCache> {
        let len = slots
            .checked_mul(PAGE_SIZE as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let p = crate::mapping::anonymous(len)?;
        Ok(SlotCache {
            base: p.cast(),
            slots,
        })
    }

    /// The cache's address range, `(start, end)`.
    pub fn range(&self) -> (u64, u64) {
        let start = self.base as u64;
        (start, start + self.slots * PAGE_SIZE as u64)
    }

    /// The first byte of slot `slot` (one page).
    pub fn slot(&self, slot: u32) -> *mut u8 {
        assert!(u64::from(slot) < self.slots, "slot {slot} out of the cache");
        self.base.wrapping_add(slot as usize * PAGE_SIZE)
    }

    /// Copies one page at `src` into slot `slot`; returns whether it was all zeroes.
    ///
    /// # Safety
    /// The caller owns `slot` and `src` is one readable page that no one writes meanwhile.
    pub unsafe fn fill(&self, slot: u32, src: *const u8) -> bool {
        let dst = self.slot(slot);
        // SAFETY: the caller owns the slot and vouches for `src`; the two never overlap
        // (the cache is a mapping of its own).
        unsafe { std::ptr::copy_nonoverlapping(src, dst, PAGE_SIZE) };
        // SAFETY: the slot is one page of ours, just written.
        let bytes = unsafe { std::slice::from_raw_parts(dst, PAGE_SIZE) };
        bytes.iter().all(|&b| b == 0)
    }

    /// The bytes of slot `slot`.
    ///
    /// # Safety
    /// The caller owns `slot` (no one writes it while the slice lives).
    pub unsafe fn bytes(&self, slot: u32) -> &[u8] {
        // SAFETY: one page inside our mapping; the caller vouches that it is stable.
        unsafe { std::slice::from_raw_parts(self.slot(slot), PAGE_SIZE) }
    }
}

impl Drop for SlotCache {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; every slot user is gone (the
        // cache is dropped with the region's shared state, after its threads).
        unsafe { libc::munmap(self.base.cast(), self.slots as usize * PAGE_SIZE) };
    }
}
