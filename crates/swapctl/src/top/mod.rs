//! `swapctl top`: the live terminal view of a swap space. Work in progress.
