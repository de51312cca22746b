//! The io_uring back end. Not yet wired: `new` reports it as unsupported, so `Auto` falls
//! back to the thread pool.

use std::io;

use super::{EngineConfig, Job, run_blocking};
use crate::DeviceError;

pub(crate) struct Uring {}

impl Uring {
    pub(crate) fn new(_config: &EngineConfig) -> Result<Uring, DeviceError> {
        Err(DeviceError::Engine {
            what: "io_uring back end".into(),
            source: io::Error::new(io::ErrorKind::Unsupported, "not yet supported"),
        })
    }

    pub(crate) fn submit(&self, job: Job) {
        run_blocking(job);
    }
}
