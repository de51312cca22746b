//! blist: work in progress.
