//! The real backend: a `pager::Pager`. (Placeholder until the pager's API lands.)

use super::backend::MemoryBackend;

/// Pager settings resolved from flags and the config file; `None` takes the pager's default.
#[derive(Debug, Clone, Default)]
pub struct PagerSettings {
    pub interleave: Option<u64>,
    pub nswbuf: Option<u64>,
    pub swap_async_max: Option<u64>,
    pub engine: Option<String>,
}

pub type PagerBackend = MemoryBackend;

impl MemoryBackend {
    pub fn start(_s: &PagerSettings) -> Result<MemoryBackend, String> {
        Ok(MemoryBackend::new(1 << 16))
    }
}
