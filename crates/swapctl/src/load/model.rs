//! What `swapctl load --verify` expects of one page, and how it judges a read of it.
//!
//! The rule checked is the pager's (issue #11): a page read back as data is exactly the last
//! generation whose put was acknowledged (`ok`, for an async put "queued") — never another
//! generation, another page or zeroes. An explicit read error is allowed and counted, never a
//! failure: storage can fail. The states:
//! - `Known`: the last put was acknowledged; data must be that generation, and "absent" is a
//!   silent loss (a failure).
//! - `Unknown`: the last put failed (`fail`/`error`): swap may hold the last acknowledged
//!   generation or nothing, so "absent" is allowed; data must still be the last acknowledged.
//! - `Lost`: `sync` reported the page's async write lost: reads are expected to fail until it
//!   is written again ("absent" is allowed too); data, if a later put succeeded meanwhile,
//!   must be the last acknowledged generation.

use control::proto::GetStatus;

use super::content;

/// Generation of a page never acknowledged.
pub const NEVER: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Known,
    Unknown,
    Lost,
}

/// One page of the model: the last acknowledged generation, the last one used (so a
/// generation is never reused, even after failed puts), and its state.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub acked: u32,
    pub last: u32,
    pub state: State,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            acked: NEVER,
            last: NEVER,
            state: State::Known,
        }
    }
}

/// What one read of a page came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The data or the absence is what the model expects.
    Verified,
    /// An explicit read error: allowed, counted.
    ReadError,
    /// Allowed, but nothing to check (absent after a failed or lost put).
    Unchecked,
    /// Wrong: data that is not the last acknowledged generation, or an acknowledged page
    /// read as absent.
    Wrong(String),
}

impl Page {
    /// The generation the next put of this page carries.
    pub fn next_generation(&mut self) -> u32 {
        self.last += 1;
        self.last
    }

    /// The put of generation `g` was acknowledged, or not.
    pub fn put(&mut self, g: u32, acked: bool) {
        if acked {
            self.acked = g;
            self.state = State::Known;
        } else {
            self.state = State::Unknown;
        }
    }

    /// `sync` reported the page's async write lost.
    pub fn lost(&mut self) {
        self.state = State::Lost;
    }

    /// Judge a read of page `pindex` of `object` that returned `status` and `data`.
    pub fn judge(&self, status: GetStatus, data: &[u8], object: u64, pindex: u64) -> Verdict {
        match status {
            GetStatus::Error => Verdict::ReadError,
            GetStatus::Absent if self.acked == NEVER || self.state != State::Known => {
                if self.acked == NEVER && self.state == State::Known {
                    Verdict::Verified
                } else {
                    Verdict::Unchecked
                }
            }
            GetStatus::Absent => Verdict::Wrong(format!(
                "object {object} page {pindex} (generation {}): swap lost the page (read as absent, not as an error)",
                self.acked
            )),
            GetStatus::Ok if self.acked == NEVER => Verdict::Wrong(format!(
                "object {object} page {pindex}: never acknowledged, but swap returned data"
            )),
            GetStatus::Ok => match content::check(data, object, pindex, self.acked) {
                Ok(()) => Verdict::Verified,
                Err(m) => Verdict::Wrong(m),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use device::PAGE_SIZE;

    fn page_of(g: u32) -> Vec<u8> {
        let mut p = vec![0u8; PAGE_SIZE];
        content::fill(&mut p, 1, 2, g);
        p
    }

    #[test]
    fn data_must_be_the_last_acknowledged_generation_whatever_the_state() {
        let mut p = Page::default();
        let g1 = p.next_generation();
        p.put(g1, true);
        let g2 = p.next_generation();
        p.put(g2, false);
        assert_eq!(p.state, State::Unknown);
        assert_eq!(
            p.judge(GetStatus::Ok, &page_of(g1), 1, 2),
            Verdict::Verified
        );
        assert!(matches!(
            p.judge(GetStatus::Ok, &page_of(g2), 1, 2),
            Verdict::Wrong(_)
        ));
        assert_eq!(
            p.judge(GetStatus::Absent, &[], 1, 2),
            Verdict::Unchecked,
            "a failed put may leave nothing"
        );
        p.lost();
        assert!(matches!(
            p.judge(GetStatus::Ok, &vec![0u8; PAGE_SIZE], 1, 2),
            Verdict::Wrong(m) if m.contains("zeroes")
        ));
        assert_eq!(p.judge(GetStatus::Error, &[], 1, 2), Verdict::ReadError);
    }

    #[test]
    fn an_acknowledged_page_read_as_absent_is_wrong_and_a_new_one_is_not() {
        let mut p = Page::default();
        assert_eq!(p.judge(GetStatus::Absent, &[], 1, 2), Verdict::Verified);
        assert!(matches!(
            p.judge(GetStatus::Ok, &page_of(1), 1, 2),
            Verdict::Wrong(_)
        ));
        let g = p.next_generation();
        p.put(g, true);
        assert!(matches!(
            p.judge(GetStatus::Absent, &[], 1, 2),
            Verdict::Wrong(m) if m.contains("absent")
        ));
        assert_eq!(p.judge(GetStatus::Error, &[], 1, 2), Verdict::ReadError);
    }

    #[test]
    fn generations_are_never_reused() {
        let mut p = Page::default();
        let a = p.next_generation();
        p.put(a, false);
        let b = p.next_generation();
        assert_ne!(a, b);
    }
}
