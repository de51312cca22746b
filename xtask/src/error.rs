//! What can go wrong in a benchmark or demo run; `main` prints it in one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interrupted")]
    Interrupted,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Device(#[from] device::DeviceError),
    #[error(transparent)]
    Pager(#[from] pager::PagerError),
    #[error("{0}")]
    Setup(String),
    #[error("{workload}: {why}")]
    Workload { workload: &'static str, why: String },
    /// A workload that cannot run on this machine or with these options (not root, one
    /// device, no memory cgroup): the run goes on and the report says why it is missing.
    #[error("{workload} skipped: {why}")]
    Skipped { workload: &'static str, why: String },
}

impl Error {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub fn workload(workload: &'static str, why: impl std::fmt::Display) -> Error {
        Error::Workload {
            workload,
            why: why.to_string(),
        }
    }

    pub fn skipped(workload: &'static str, why: impl std::fmt::Display) -> Error {
        Error::Skipped {
            workload,
            why: why.to_string(),
        }
    }
}
