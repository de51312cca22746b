//! `SWAPKIT_ENGINE` overrides `EngineKind::Auto` (its own test binary: it sets the variable).

#![allow(clippy::unwrap_used)]

use device::{Engine, EngineKind};

#[test]
fn swapkit_engine_env_overrides_auto_and_bad_values_are_refused() {
    // SAFETY: this binary has one test, so no other thread reads the environment meanwhile.
    unsafe { std::env::set_var("SWAPKIT_ENGINE", "threads") };
    assert_eq!(
        Engine::new(EngineKind::Auto).unwrap().kind(),
        EngineKind::ThreadPool
    );
    if Engine::new(EngineKind::IoUring).is_ok() {
        // SAFETY: as above.
        unsafe { std::env::set_var("SWAPKIT_ENGINE", "io_uring") };
        assert_eq!(
            Engine::new(EngineKind::Auto).unwrap().kind(),
            EngineKind::IoUring
        );
    }
    // An explicit kind is not overridden.
    assert_eq!(
        Engine::new(EngineKind::ThreadPool).unwrap().kind(),
        EngineKind::ThreadPool
    );
    // SAFETY: as above.
    unsafe { std::env::set_var("SWAPKIT_ENGINE", "aio") };
    let err = Engine::new(EngineKind::Auto).unwrap_err();
    assert_eq!(
        err.to_string(),
        "I/O engine: SWAPKIT_ENGINE=aio: unknown engine `aio` (expected auto, io_uring or threads)"
    );
    // SAFETY: as above.
    unsafe { std::env::remove_var("SWAPKIT_ENGINE") };
}
