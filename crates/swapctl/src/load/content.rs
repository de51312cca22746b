//! What `swapctl load` writes into a page, and how a page read back is checked.
//!
//! A page's content is a pure function of (object, page index, generation): a 24-byte
//! plain header naming those three, then a splitmix64 stream seeded from them. So a mismatch
//! can say not only *that* a page is wrong but *whose* page it holds instead (a misdirected
//! read or a stale generation), which is what a pager bug looks like.

use device::PAGE_SIZE;

const HEADER: usize = 24;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill one page with the content of (`object`, `pindex`, `generation`).
pub fn fill(page: &mut [u8], object: u64, pindex: u64, generation: u32) {
    page[0..8].copy_from_slice(&object.to_le_bytes());
    page[8..16].copy_from_slice(&pindex.to_le_bytes());
    page[16..24].copy_from_slice(&u64::from(generation).to_le_bytes());
    let mut seed = object.rotate_left(40) ^ pindex.rotate_left(8) ^ u64::from(generation);
    for chunk in page[HEADER..PAGE_SIZE].chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix(&mut seed).to_le_bytes());
    }
}

/// Check `page` against (`object`, `pindex`, `generation`). `Err` says where it differs and,
/// when the header is intact, whose content it holds.
pub fn check(page: &[u8], object: u64, pindex: u64, generation: u32) -> Result<(), String> {
    let mut want = vec![0u8; PAGE_SIZE];
    fill(&mut want, object, pindex, generation);
    let Some(at) = page.iter().zip(&want).position(|(a, b)| a != b) else {
        return Ok(());
    };
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&page[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let mut msg = format!(
        "object {object} page {pindex} (generation {generation}): byte {at} is {:#04x}, expected {:#04x}",
        page[at], want[at]
    );
    if page.iter().all(|b| *b == 0) {
        msg.push_str("; the page reads as zeroes");
    } else if at >= HEADER
        || word(0) != object
        || word(8) != pindex
        || word(16) != u64::from(generation)
    {
        let (o, p, g) = (word(0), word(8), word(16));
        let mut probe = vec![0u8; PAGE_SIZE];
        if let Ok(g32) = u32::try_from(g) {
            fill(&mut probe, o, p, g32);
            if probe == page {
                msg.push_str(&format!(
                    "; it holds object {o} page {p} generation {g} instead"
                ));
            }
        }
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_checks_against_its_own_content_only() {
        let mut p = vec![0u8; PAGE_SIZE];
        fill(&mut p, 3, 17, 2);
        assert!(check(&p, 3, 17, 2).is_ok());
        let e = check(&p, 3, 17, 3).unwrap_err();
        assert!(e.contains("holds object 3 page 17 generation 2"), "{e}");
        let e = check(&p, 3, 18, 2).unwrap_err();
        assert!(e.contains("object 3 page 18"), "{e}");
        let e = check(&vec![0u8; PAGE_SIZE], 1, 1, 1).unwrap_err();
        assert!(e.contains("zeroes"), "{e}");
    }

    #[test]
    fn a_flipped_byte_is_located() {
        let mut p = vec![0u8; PAGE_SIZE];
        fill(&mut p, 1, 2, 3);
        p[1000] ^= 1;
        let e = check(&p, 1, 2, 3).unwrap_err();
        assert!(e.contains("byte 1000"), "{e}");
    }
}
