//! swapctl: administer a swapkit swap space. Work in progress: see docs/ARCHITECTURE.md.

pub mod top;
