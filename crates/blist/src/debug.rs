//! Debugging aids for the REPL: FreeBSD's creation banner and tree dump (`blist_print`), in
//! FreeBSD's exact text so that the same script prints the same bytes on both.

use std::fmt;

use crate::tree::skip;
use crate::{Blist, RADIX};

/// FreeBSD's `blist_print` dump of a [`Blist`]; see [`Blist::tree_dump`].
#[derive(Debug)]
pub struct TreeDump<'a>(&'a Blist);

impl Blist {
    /// The tree as FreeBSD's `blist_print` shows it: the list's avail and cursor, then every
    /// node holding a free block, indented by depth, with its bitmap and hint.
    pub fn tree_dump(&self) -> TreeDump<'_> {
        TreeDump(self)
    }

    /// The two lines FreeBSD's `blist_create` prints in its debug build: blocks, megabytes of
    /// 4 KiB swap, KiB of tree, and the node count.
    pub fn creation_banner(&self) -> String {
        let nodes = self.node_count();
        format!(
            "BLIST representing {} blocks ({} MB of swap), requiring {}K of ram\n\
             BLIST raw radix tree contains {} records\n",
            self.blocks,
            self.blocks * 4 / 1024,
            (nodes * 16).div_ceil(1024),
            nodes
        )
    }
}

impl fmt::Display for TreeDump<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bl = self.0;
        writeln!(
            f,
            "BLIST avail = {}, cursor = {:08x} {{",
            bl.avail, bl.cursor
        )?;
        if bl.bitmap(0) != 0 {
            print_node(bl, f, 0, 0, bl.span, 4)?;
        }
        writeln!(f, "}}")
    }
}

/// One node and, for a meta node, its non-empty children, `tab` spaces in.
fn print_node(
    bl: &Blist,
    f: &mut fmt::Formatter<'_>,
    idx: usize,
    base: u64,
    span: u64,
    tab: usize,
) -> fmt::Result {
    let (bitmap, hint) = (bl.bitmap(idx), bl.hint(idx));
    if span == RADIX {
        return writeln!(
            f,
            "{:tab$}({base:08x},{RADIX}): bitmap {bitmap:016x} big={hint}",
            ""
        );
    }
    writeln!(
        f,
        "{:tab$}({base:08x}): subtree ({span}/{span}) bitmap {bitmap:016x} big={hint} {{",
        ""
    )?;
    let child_span = span / RADIX;
    let mut mask = bitmap;
    while mask != 0 {
        let digit = u64::from(mask.trailing_zeros());
        mask &= mask - 1;
        let child = idx + 1 + digit as usize * skip(child_span);
        print_node(bl, f, child, base + digit * child_span, child_span, tab + 4)?;
    }
    writeln!(f, "{:tab$}}}", "")
}
