//! The backbone: random operations over several objects on 2–4 areas, against a
//! `HashMap<(object, pindex), page>` model. Every read equals the model, and after every
//! operation the allocators and the metadata agree (`Pager::verify`).

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is the failure report.

mod common;

use common::model::{Harness, cases, engine, op};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    #[test]
    fn every_read_equals_the_model_and_no_block_leaks(
        interleave in prop_oneof![Just(0u64), Just(1), Just(4), Just(32)],
        engine in engine(),
        ops in prop::collection::vec(op(false), 1..80),
    ) {
        let mut h = Harness::new(interleave, false, engine);
        for op in &ops {
            h.apply(op)?;
        }
        h.finish()?;
    }
}
