//! The few libnbd functions we use, loaded from `libnbd.so.0` at run time.
//!
//! Why at run time: a build-time link needs `libnbd-dev` and pkg-config on the building
//! machine, and the README's test command (`cargo test --workspace`) must build on a fresh
//! one. The Rust crate `libnbd` links at build time and targets newer libnbd than Debian
//! 12's 1.14. So the table below is hand-written from the libnbd 1.14 man pages (every
//! function here first appeared in libnbd 1.0-1.2, so any `libnbd.so.0` has them), and a
//! machine without the library fails an `nbd://` swapon with one line saying what to
//! install.
//!
//! Thread model (libnbd(3)): a handle may be used from several threads (libnbd locks it),
//! but completion callbacks run with the handle's lock held, inside whichever libnbd call
//! made progress. We make every call on one handle from its connection thread only, and
//! the callback only records `(id, errno)` in that thread's list (see `conn.rs`).

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

/// The one line a swapon of an NBD URI fails with where libnbd is missing.
pub(crate) const MISSING: &str = "nbd areas need libnbd.so.0: apt-get install libnbd0";

/// Loads the library from this path instead of `libnbd.so.0` (an unusual install; tests
/// point it at nothing to see the message of a machine without libnbd).
pub const LIB_ENV: &str = "SWAPKIT_LIBNBD";

/// `struct nbd_handle`, opaque.
#[repr(C)]
pub(crate) struct Handle {
    _private: [u8; 0],
}

/// `nbd_completion_callback`, passed by value.
#[repr(C)]
pub(crate) struct Completion {
    pub(crate) callback: Option<unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int>,
    pub(crate) user_data: *mut c_void,
    pub(crate) free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// `LIBNBD_AIO_DIRECTION_READ` / `_WRITE`.
pub(crate) const DIRECTION_READ: c_uint = 1;
pub(crate) const DIRECTION_WRITE: c_uint = 2;

type HandleFn = unsafe extern "C" fn(*mut Handle) -> c_int;
type IoFn = unsafe extern "C" fn(*mut Handle, *mut c_void, usize, u64, Completion, u32) -> i64;
type WriteFn = unsafe extern "C" fn(*mut Handle, *const c_void, usize, u64, Completion, u32) -> i64;

/// The functions, resolved once.
pub(crate) struct Lib {
    pub(crate) create: unsafe extern "C" fn() -> *mut Handle,
    pub(crate) close: unsafe extern "C" fn(*mut Handle),
    pub(crate) get_error: unsafe extern "C" fn() -> *const c_char,
    pub(crate) get_errno: unsafe extern "C" fn() -> c_int,
    pub(crate) set_uri_allow_local_file: unsafe extern "C" fn(*mut Handle, bool) -> c_int,
    pub(crate) aio_connect_uri: unsafe extern "C" fn(*mut Handle, *const c_char) -> c_int,
    pub(crate) aio_is_ready: HandleFn,
    pub(crate) aio_is_dead: HandleFn,
    pub(crate) aio_is_closed: HandleFn,
    pub(crate) aio_get_fd: HandleFn,
    pub(crate) aio_get_direction: unsafe extern "C" fn(*mut Handle) -> c_uint,
    pub(crate) aio_notify_read: HandleFn,
    pub(crate) aio_notify_write: HandleFn,
    pub(crate) get_size: unsafe extern "C" fn(*mut Handle) -> i64,
    pub(crate) can_multi_conn: HandleFn,
    pub(crate) can_trim: HandleFn,
    pub(crate) can_flush: HandleFn,
    pub(crate) is_read_only: HandleFn,
    pub(crate) aio_pread: IoFn,
    pub(crate) aio_pwrite: WriteFn,
    pub(crate) aio_trim: unsafe extern "C" fn(*mut Handle, u64, u64, Completion, u32) -> i64,
    pub(crate) aio_flush: unsafe extern "C" fn(*mut Handle, Completion, u32) -> i64,
    /// Keeps the library mapped as long as the pointers above are used (for ever).
    _lib: libloading::Library,
}

impl Lib {
    /// The library, loaded on first use; `Err` holds the line to show when it is missing.
    pub(crate) fn get() -> Result<&'static Lib, &'static str> {
        static LIB: OnceLock<Option<Lib>> = OnceLock::new();
        LIB.get_or_init(Lib::load).as_ref().ok_or(MISSING)
    }

    fn load() -> Option<Lib> {
        let name = std::env::var_os(LIB_ENV).unwrap_or_else(|| "libnbd.so.0".into());
        // SAFETY: loading libnbd runs its initialisers, which only set up its own state.
        let lib = unsafe { libloading::Library::new(name) }.ok()?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol has, in every libnbd.so.0 since 1.2, the C signature
                // of the field it is stored in (checked against the libnbd 1.14 man pages).
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.ok()?
            };
        }
        Some(Lib {
            create: sym!("nbd_create"),
            close: sym!("nbd_close"),
            get_error: sym!("nbd_get_error"),
            get_errno: sym!("nbd_get_errno"),
            set_uri_allow_local_file: sym!("nbd_set_uri_allow_local_file"),
            aio_connect_uri: sym!("nbd_aio_connect_uri"),
            aio_is_ready: sym!("nbd_aio_is_ready"),
            aio_is_dead: sym!("nbd_aio_is_dead"),
            aio_is_closed: sym!("nbd_aio_is_closed"),
            aio_get_fd: sym!("nbd_aio_get_fd"),
            aio_get_direction: sym!("nbd_aio_get_direction"),
            aio_notify_read: sym!("nbd_aio_notify_read"),
            aio_notify_write: sym!("nbd_aio_notify_write"),
            get_size: sym!("nbd_get_size"),
            can_multi_conn: sym!("nbd_can_multi_conn"),
            can_trim: sym!("nbd_can_trim"),
            can_flush: sym!("nbd_can_flush"),
            is_read_only: sym!("nbd_is_read_only"),
            aio_pread: sym!("nbd_aio_pread"),
            aio_pwrite: sym!("nbd_aio_pwrite"),
            aio_trim: sym!("nbd_aio_trim"),
            aio_flush: sym!("nbd_aio_flush"),
            _lib: lib,
        })
    }

    /// The calling thread's last libnbd error, as text and errno (0 when libnbd gave none).
    pub(crate) fn last_error(&self) -> (String, i32) {
        // SAFETY: nbd_get_error returns a thread-local string or NULL; nbd_get_errno an int.
        let (text, errno) = unsafe { ((self.get_error)(), (self.get_errno)()) };
        let text = if text.is_null() {
            "unknown libnbd error".to_owned()
        } else {
            // SAFETY: non-NULL: a NUL-terminated string valid until the next libnbd call on
            // this thread; copied at once.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        };
        (text, errno)
    }
}
