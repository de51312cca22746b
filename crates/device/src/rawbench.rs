//! Raw device measurements (to be filled in): shared by `cargo bench -p device` and
//! `cargo xtask bench`, which measure the physical limit of a device beside the pager.
