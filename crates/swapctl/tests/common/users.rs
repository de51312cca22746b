//! A throwaway user and group for tests that need a non-root peer: created with
//! `groupadd`/`useradd` under a unique name, removed on drop (also when the test fails).

#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A user `swk<pid>x<n>` whose primary group is the group of the same name.
pub struct Throwaway {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Throwaway {
    /// `None` (after saying why) when not root or when the tools are missing.
    pub fn create() -> Option<Throwaway> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to create a throwaway user and group");
            return None;
        }
        let name = format!(
            "swk{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        if !ok(Command::new("groupadd").arg(&name)) {
            eprintln!("skipped: groupadd {name} failed");
            return None;
        }
        // From here the guard removes the group even if useradd fails.
        let mut t = Throwaway {
            name: name.clone(),
            uid: 0,
            gid: 0,
        };
        if !ok(Command::new("useradd")
            .args(["-M", "-N", "-g", &name, "-s", "/usr/sbin/nologin"])
            .arg(&name))
        {
            eprintln!("skipped: useradd {name} failed");
            return None;
        }
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        t.uid = user.uid.as_raw();
        t.gid = user.gid.as_raw();
        Some(t)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        // userdel may take the group with the user: groupdel then has nothing to do.
        let quiet = |c: &mut Command| {
            let _ = c
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        quiet(Command::new("userdel").arg(&self.name));
        quiet(Command::new("groupdel").arg(&self.name));
    }
}
