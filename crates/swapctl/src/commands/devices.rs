//! The commands that work on devices directly, without a daemon: mkswap and loop.

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use device::loopdev::{self, LoopDevice, LoopOptions};
use device::mkswap::MkswapOptions;
use device::units::{format_uuid, parse_uuid};

use crate::cli::{LoopCommand, MkswapArgs};
use crate::format::table::{Align, render};
use crate::output::exit::{self, EX_FAILURE, EX_SYSERR, EX_USAGE};
use crate::output::{CliError, print};
use crate::units::human;

/// Bytes a swap label holds (`volume_name[16]` of the header).
const LABEL_BYTES: usize = 16;

/// A device error as one line; it already names the path. Permission denied (not root,
/// a file we may not open) is [`EX_USAGE`], as the exit-status table says.
fn device_err(e: device::DeviceError) -> CliError {
    let code = if denied(&e) {
        EX_USAGE
    } else {
        match &e {
            device::DeviceError::Io { .. } => EX_SYSERR,
            _ => EX_FAILURE,
        }
    };
    CliError {
        message: e.to_string(),
        code,
    }
}

/// Whether `e`, or an error it was caused by, is an I/O error saying permission denied.
fn denied(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return true;
        }
        at = e.source();
    }
    false
}

/// An I/O error on `what` as one line: permission denied is [`EX_USAGE`], anything else
/// [`EX_FAILURE`].
fn io_err(what: &str, e: std::io::Error) -> CliError {
    let code = if e.kind() == std::io::ErrorKind::PermissionDenied {
        EX_USAGE
    } else {
        EX_FAILURE
    };
    CliError::new(what, e).with_code(code)
}

/// The size of a block device, regular file or NBD export, or `None` when it does not exist.
fn size_of(path: &Path) -> Result<Option<u64>, CliError> {
    let what = path.display().to_string();
    if device::nbd::is_uri(path) {
        return device::nbd::export_size(path).map(Some).map_err(device_err);
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::new(&what, e).with_code(EX_SYSERR)),
    };
    if meta.file_type().is_block_device() {
        use std::io::Seek;
        let mut f = std::fs::File::open(path).map_err(|e| CliError::new(&what, e))?;
        let end = f
            .seek(std::io::SeekFrom::End(0))
            .map_err(|e| CliError::new(&what, e).with_code(EX_SYSERR))?;
        return Ok(Some(end));
    }
    Ok(Some(meta.len()))
}

/// `swapctl mkswap`, as util-linux's: a positional size, `-p` checked against our page size,
/// `-v`; a size larger than the device is refused (never grows a file), a long label is cut
/// with a warning, and a file others may read is warned about.
pub fn mkswap(a: &MkswapArgs) -> Result<i32, CliError> {
    let what = a.device.display().to_string();
    if let Some(ps) = a.pagesize
        && ps != device::PAGE_SIZE as u64
    {
        return Err(CliError::usage(
            &what,
            format!(
                "page size {ps} is not supported: swapkit's pages are {} bytes",
                device::PAGE_SIZE
            ),
        ));
    }
    let uuid = match &a.uuid {
        Some(u) => Some(parse_uuid(u).map_err(|e| CliError::usage(&what, e))?),
        None => None,
    };
    let asked = a.pages.or(a.size.map(|b| b / device::PAGE_SIZE as u64));
    let have = storage_bytes(a, asked)?;
    if a.verbose {
        eprintln!("swapctl: {what}: writing a swap header");
    }
    let opts = MkswapOptions {
        label: a.label.clone().map(cut_label),
        uuid,
        pages: asked,
        check: a.check,
        force: a.force,
    };
    let h = device::mkswap::mkswap(&a.device, &opts).map_err(|e| match e {
        // The device error quotes the device's size; what was asked for is what matters.
        device::DeviceError::TooSmall { needed_bytes, .. } => CliError::new(
            &what,
            format!(
                "too small: a swap area needs at least {}, asked for {}",
                human(needed_bytes),
                human(asked.map_or(have, |p| p * device::PAGE_SIZE as u64))
            ),
        ),
        e => device_err(e),
    })?;
    warn_after_mkswap(a, &h);
    print(&mkswap_report(&h));
    Ok(0)
}

/// The bytes of `a.device`, made first as a file of `asked` pages when it does not exist
/// (readable by root only: swap holds anyone's memory). An existing one is never grown:
/// asking for more than it holds is refused.
fn storage_bytes(a: &MkswapArgs, asked: Option<u64>) -> Result<u64, CliError> {
    let what = a.device.display().to_string();
    let have = match (size_of(&a.device)?, asked) {
        (Some(have), _) => have,
        (None, Some(pages)) => {
            let bytes = pages.saturating_mul(device::PAGE_SIZE as u64);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&a.device)
                .map_err(|e| CliError::new(&what, e))?;
            f.set_len(bytes).map_err(|e| {
                let _ = std::fs::remove_file(&a.device);
                CliError::new(&what, e)
            })?;
            bytes
        }
        (None, None) => {
            return Err(CliError::new(
                &what,
                "no such file or device (give a size to create a file)",
            ));
        }
    };
    if let Some(pages) = asked {
        let want = pages.saturating_mul(device::PAGE_SIZE as u64);
        if want > have {
            return Err(CliError::new(
                &what,
                format!(
                    "too small: asked for {pages} pages ({}), the device holds {}",
                    human(want),
                    human(have)
                ),
            ));
        }
    }
    Ok(have)
}

/// A label cut to the header's `LABEL_BYTES`, at a char boundary.
fn cut_label(mut label: String) -> String {
    if label.len() > LABEL_BYTES {
        let mut cut = LABEL_BYTES;
        while !label.is_char_boundary(cut) {
            cut -= 1;
        }
        label.truncate(cut);
    }
    label
}

/// Warnings after the work, so that a refusal stays one line: a label that was cut, a
/// device larger than a swap area can be, a file others may read.
fn warn_after_mkswap(a: &MkswapArgs, h: &device::SwapHeader) {
    let what = a.device.display();
    if let Some(asked) = &a.label
        && asked.len() > h.label.len()
    {
        eprintln!(
            "swapctl: warning: Label was truncated to {} bytes: {}",
            h.label.len(),
            h.label
        );
    }
    // No size asked and the header at the most a header can say: the device is larger
    // than a swap area can be, and the rest of it is left unused.
    let most = u64::from(u32::MAX);
    if a.pages.is_none() && a.size.is_none() && u64::from(h.last_page) + 1 >= most {
        eprintln!(
            "swapctl: warning: {what}: capped to {} ({most} pages), the most a swap area can hold; the rest of the device is not used",
            device::units::human(most * device::PAGE_SIZE as u64)
        );
    }
    if let Ok(m) = std::fs::metadata(&a.device)
        && m.file_type().is_file()
        && m.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "swapctl: {what}: insecure permissions {:04o}, 0600 suggested",
            m.permissions().mode() & 0o7777
        );
    }
}

/// What util-linux's mkswap prints: the size, the label and UUID, and bad pages if any.
fn mkswap_report(h: &device::SwapHeader) -> String {
    let bytes = h.usable_pages() * device::PAGE_SIZE as u64;
    let label = if h.label.is_empty() {
        "no label".to_owned()
    } else {
        format!("LABEL={}", h.label)
    };
    let mut text = format!(
        "Setting up swapspace version 1, size = {} ({bytes} bytes)\n{label}, UUID={}\n",
        human(bytes),
        format_uuid(&h.uuid)
    );
    if !h.bad_pages.is_empty() {
        let n = h.bad_pages.len();
        text.push_str(&format!("{n} bad page{}\n", if n == 1 { "" } else { "s" }));
    }
    text
}

/// Where `loop attach` records the devices it attached, so `loop detach -a` takes ours
/// only: `$SWAPKIT_STATE_DIR/loops`, else `/run/swapkit/loops`. One `DEVICE\tFILE` a line.
fn registry() -> PathBuf {
    std::env::var_os("SWAPKIT_STATE_DIR")
        .map_or_else(|| PathBuf::from("/run/swapkit"), PathBuf::from)
        .join("loops")
}

fn read_registry() -> Vec<(PathBuf, PathBuf)> {
    std::fs::read_to_string(registry())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(d, f)| (PathBuf::from(d), PathBuf::from(f)))
        .collect()
}

fn write_registry(entries: &[(PathBuf, PathBuf)]) {
    let path = registry();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text: String = entries
        .iter()
        .map(|(d, f)| format!("{}\t{}\n", d.display(), f.display()))
        .collect();
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("swapctl: warning: {}: {e}", path.display());
    }
}

/// Whether someone holds `dev`: mounted, swapped on, held by a daemon or a device mapper.
/// An exclusive open fails with EBUSY then; holders show in sysfs.
fn in_use(dev: &Path) -> bool {
    let busy = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(dev)
        .is_err_and(|e| e.raw_os_error() == Some(libc::EBUSY));
    let holders = dev
        .file_name()
        .map(|n| Path::new("/sys/block").join(n).join("holders"))
        .and_then(|h| std::fs::read_dir(h).ok())
        .is_some_and(|mut d| d.next().is_some());
    busy || holders
}

/// Detach `dev`, refusing one in use: the kernel would only mark it autoclear and return
/// success, and the number could later name someone else's device.
fn detach_one(dev: &Path) -> Result<(), CliError> {
    if in_use(dev) {
        return Err(CliError::new(
            dev.display(),
            "in use (swapped on, mounted or held): turn it off first",
        ));
    }
    loopdev::detach_path(dev).map_err(device_err)?;
    let all = read_registry();
    let rest: Vec<_> = all.iter().filter(|(d, _)| d != dev).cloned().collect();
    if rest.len() != all.len() {
        write_registry(&rest);
    }
    Ok(())
}

/// `loop detach -a`: every device the registry names that is still bound to the file we
/// attached it to; another program's device (even one reusing the number) is left alone.
fn detach_ours() -> Result<i32, CliError> {
    let entries = read_registry();
    let (mut bits, mut failed, mut tried) = (0, 0, 0);
    let mut keep = Vec::new();
    for (dev, file) in entries {
        let ours = loopdev::info(&dev).is_ok_and(|i| i.backing_file == file);
        if !ours {
            continue;
        }
        tried += 1;
        if let Err(e) = detach_one(&dev) {
            eprintln!("swapctl: {e}");
            bits |= e.code;
            failed += 1;
            keep.push((dev, file));
        }
    }
    write_registry(&keep);
    Ok(exit::combine(bits, failed, tried, true))
}

/// `swapctl loop attach`. A file that already has a loop device is refused, naming it,
/// unless `shared`: two devices on one file invite swapping on both.
fn attach(file: &Path, size: Option<u64>, create: bool, shared: bool) -> Result<i32, CliError> {
    let existed = file.exists();
    let r = attach_inner(file, size, create, shared);
    if r.is_err() && !existed && create {
        // A failed `--create` leaves nothing behind.
        let _ = std::fs::remove_file(file);
    }
    r
}

/// A device error; a second device on an attached file says how to get one anyway.
fn refused_unless_shared(e: device::DeviceError) -> CliError {
    match e {
        e @ device::DeviceError::AlreadyAttached { .. } => CliError {
            message: format!("{e} (--shared attaches another device anyway)"),
            code: EX_FAILURE,
        },
        e => device_err(e),
    }
}

fn attach_inner(
    file: &Path,
    size: Option<u64>,
    create: bool,
    shared: bool,
) -> Result<i32, CliError> {
    let what = file.display().to_string();
    // Refused before the file is made or grown, so a refusal changes nothing.
    if !shared && file.exists() {
        loopdev::refuse_attached(file).map_err(refused_unless_shared)?;
    }
    if let Some(size) = size {
        // Swap may hold anyone's memory: a file we create is readable by root only.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .open(file)
            .map_err(|e| io_err(&what, e))?;
        let len = f.metadata().map_err(|e| io_err(&what, e))?.len();
        if len > size {
            // Never shrunk (that would cut what may be on it), and never attached at a
            // size other than the one asked for without a word.
            return Err(CliError::new(
                &what,
                format!(
                    "is {}, larger than --size {} (a file is never shrunk: leave out --size to attach it as it is)",
                    human(len),
                    human(size)
                ),
            ));
        }
        if len < size {
            f.set_len(size).map_err(|e| io_err(&what, e))?;
        }
    } else if !file.exists() {
        return Err(CliError::usage(
            &what,
            "no such file (use --create --size SIZE)",
        ));
    }
    // No autoclear: the device must outlive this command, until `swapctl loop detach`.
    let opts = LoopOptions {
        direct_io: true,
        block_size: device::PAGE_SIZE as u32,
        autoclear: false,
        read_only: false,
    };
    let dev = if shared {
        LoopDevice::attach_shared(file, &opts).map_err(device_err)?
    } else {
        LoopDevice::attach(file, &opts).map_err(refused_unless_shared)?
    };
    let path = dev.persist();
    let backing = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let mut reg = read_registry();
    reg.retain(|(d, _)| *d != path);
    reg.push((path.clone(), backing));
    write_registry(&reg);
    print(&format!("{}\n", path.display()));
    Ok(0)
}

pub fn loop_command(c: LoopCommand) -> Result<i32, CliError> {
    match c {
        LoopCommand::Attach {
            file,
            size,
            create,
            shared,
            ..
        } => attach(&file, size, create, shared),
        LoopCommand::Detach { device, all, .. } => match device {
            Some(dev) if !all => {
                detach_one(&dev)?;
                Ok(0)
            }
            _ => detach_ours(),
        },
        LoopCommand::List { json, .. } => {
            let list = loopdev::list().map_err(device_err)?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "name": l.path.display().to_string(),
                            "back-file": l.backing_file.display().to_string(),
                            "dio": l.direct_io,
                            "autoclear": l.autoclear,
                            "ro": l.read_only,
                            "log-sec": l.block_size,
                        })
                    })
                    .collect();
                let text =
                    serde_json::to_string_pretty(&serde_json::json!({ "loopdevices": rows }))
                        .unwrap_or_default();
                print(&(text + "\n"));
            } else {
                let mut rows = vec![
                    ["NAME", "BACK-FILE", "DIO", "AUTOCLEAR", "RO", "LOG-SEC"]
                        .map(String::from)
                        .to_vec(),
                ];
                let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
                for l in &list {
                    rows.push(vec![
                        l.path.display().to_string(),
                        l.backing_file.display().to_string(),
                        flag(l.direct_io),
                        flag(l.autoclear),
                        flag(l.read_only),
                        l.block_size.to_string(),
                    ]);
                }
                use Align::{Left, Right};
                print(&render(
                    &rows,
                    &[Left, Left, Right, Right, Right, Right],
                    false,
                ));
            }
            Ok(0)
        }
    }
}
