//! swmeta: work in progress.
