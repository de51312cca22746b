//! The commands that work on devices directly, without a daemon: mkswap and loop.

use std::path::Path;

use device::loopdev::{self, LoopDevice, LoopOptions};
use device::mkswap::MkswapOptions;
use device::units::{format_uuid, parse_uuid};

use super::{CliError, print};
use crate::cli::{LoopCommand, MkswapArgs};
use crate::format::table::{Align, render};
use crate::units::human;

pub fn mkswap(a: &MkswapArgs) -> Result<i32, CliError> {
    let what = a.device.display().to_string();
    let uuid = match &a.uuid {
        Some(u) => Some(parse_uuid(u).map_err(|e| CliError::new(&what, e))?),
        None => None,
    };
    let opts = MkswapOptions {
        label: a.label.clone(),
        uuid,
        pages: a.pages,
        check: a.check,
        force: a.force,
    };
    // The device error already names the path.
    let h = device::mkswap::mkswap(&a.device, &opts).map_err(|e| CliError {
        message: e.to_string(),
        code: 1,
    })?;
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
        text.push_str(&format!("{} bad pages\n", h.bad_pages.len()));
    }
    print(&text);
    Ok(0)
}

/// `swapctl loop attach`. A file that already has a loop device is refused, naming it,
/// unless `shared`: two devices on one file invite swapping on both.
fn attach(file: &Path, size: Option<u64>, create: bool, shared: bool) -> Result<i32, CliError> {
    let what = file.display().to_string();
    if !shared && file.exists() {
        let attached = loopdev::attached_to(file).map_err(|e| CliError {
            message: e.to_string(),
            code: 1,
        })?;
        if let Some(device) = attached.into_iter().next() {
            let e = device::DeviceError::AlreadyAttached {
                path: file.to_owned(),
                device,
            };
            return Err(CliError {
                message: format!("{e} (--shared attaches another device anyway)"),
                code: 1,
            });
        }
    }
    if let Some(size) = size {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(create)
            .truncate(false)
            .open(file)
            .map_err(|e| CliError::new(&what, e))?;
        let len = f.metadata().map_err(|e| CliError::new(&what, e))?.len();
        if len < size {
            f.set_len(size).map_err(|e| CliError::new(&what, e))?;
        }
    } else if !file.exists() {
        return Err(CliError::new(
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
    let dev = LoopDevice::attach(file, &opts).map_err(|e| CliError {
        message: e.to_string(),
        code: 1,
    })?;
    let path = dev.persist();
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
        } => attach(&file, size, create, shared),
        LoopCommand::Detach { device } => {
            loopdev::detach_path(&device).map_err(|e| CliError {
                message: e.to_string(),
                code: 1,
            })?;
            Ok(0)
        }
        LoopCommand::List { json } => {
            let list = loopdev::list().map_err(|e| CliError {
                message: e.to_string(),
                code: 1,
            })?;
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
