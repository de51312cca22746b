//! `swapctl man`: a page per command with EXIT STATUS, FILES and ENVIRONMENT, plus
//! `swapctl.toml(5)`; `--dir` writes them all. Every page is snapshot-tested.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[macro_use]
mod common;

use std::path::Path;

const COMMANDS: [&str; 15] = [
    "mkswap",
    "loop",
    "daemon",
    "on",
    "off",
    "list",
    "summary",
    "status",
    "frag",
    "set",
    "load",
    "top",
    "run",
    "completions",
    "man",
];

#[test]
fn man_dir_writes_a_page_per_command_and_the_config_page() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-man")
        .tempdir()
        .unwrap();
    let root = dir.path().join("man");
    let none = Path::new("/nonexistent/swapkit.sock");
    let run = common::swapctl_env(&["man", "--dir", root.to_str().unwrap()], none);
    assert!(run.status.success(), "{}", common::stderr(&run));
    let names_in = |sub: &str| {
        let mut names: Vec<String> = std::fs::read_dir(root.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let mut want: Vec<String> = COMMANDS.iter().map(|c| format!("swapctl-{c}.1")).collect();
    want.push("swapctl.1".into());
    want.sort();
    assert_eq!(names_in("man1"), want);
    assert_eq!(names_in("man5"), ["swapctl.toml.5"]);
    let out = root.join("man1");
    let mut names = names_in("man1");
    names.push("swapctl.toml.5".into());
    for name in &names {
        let section = if name.ends_with(".5") { "man5" } else { "man1" };
        let text = std::fs::read_to_string(root.join(section).join(name)).unwrap();
        if name.ends_with(".1") {
            for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES"] {
                assert!(text.contains(section), "{name} lacks {section}");
            }
        }
        snap!(format!("man_{name}"), text);
    }
    // One page on stdout, by command name.
    let on = common::stdout(&common::swapctl_env(&["man", "on"], none));
    assert_eq!(
        on,
        std::fs::read_to_string(out.join("swapctl-on.1")).unwrap()
    );
}

/// `--dir .../man1`, as the README once said: the section 5 page goes beside it, to man5.
#[test]
fn man_dir_of_a_section_puts_section_5_beside_it() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-man")
        .tempdir()
        .unwrap();
    let man1 = dir.path().join("man1");
    let none = Path::new("/nonexistent/swapkit.sock");
    let run = common::swapctl_env(&["man", "--dir", man1.to_str().unwrap()], none);
    assert!(run.status.success(), "{}", common::stderr(&run));
    assert!(man1.join("swapctl-on.1").exists());
    assert!(!man1.join("swapctl.toml.5").exists());
    assert!(dir.path().join("man5").join("swapctl.toml.5").exists());
    assert_eq!(
        common::stdout(&run),
        format!(
            "17 pages written to {} and {}\n",
            man1.display(),
            dir.path().join("man5").display()
        )
    );
}

/// On a terminal `swapctl man on` shows the page rendered by `man`, not roff.
#[test]
fn man_on_a_terminal_is_rendered() {
    if std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no man(1) here");
        return;
    }
    let mut command = std::process::Command::new(common::BIN);
    command.args(["man", "on"]).env("MANPAGER", "cat");
    let Some(mut pty) = common::pty::PtyChild::spawn(command) else {
        return;
    };
    pty.wait_for(&["SWAPCTL-ON(1)"]);
    let status = pty.wait_exit();
    assert!(status.success(), "{status}: {}", pty.tail());
    let text = pty.text();
    assert!(!text.contains(".SH"), "roff on a terminal: {}", pty.tail());
}

/// FreeBSD's options and the commands exclude each other: after `swapctl -l ` bash offers
/// options only, while the first word still offers the commands.
#[test]
fn bash_completion_offers_no_commands_after_an_option() {
    let none = Path::new("/nonexistent/swapkit.sock");
    let script = common::stdout(&common::swapctl_env(&["completions", "bash"], none));
    let dir = tempfile::Builder::new()
        .prefix("swapkit-comp")
        .tempdir()
        .unwrap();
    let file = dir.path().join("swapctl.bash");
    std::fs::write(&file, script).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(swapctl -l ''); COMP_CWORD=2; _swapctl swapctl '' -l; \
         echo \"${{COMPREPLY[*]}}\"; COMP_WORDS=(swapctl ''); COMP_CWORD=1; \
         _swapctl swapctl '' swapctl; echo \"${{COMPREPLY[*]}}\"",
        file.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    let text = common::stdout(&out);
    let mut lines = text.lines();
    let after_l = lines.next().unwrap_or_default();
    let first = lines.next().unwrap_or_default();
    assert!(
        after_l.contains("-s") && !after_l.contains("mkswap"),
        "{after_l}"
    );
    assert!(first.contains("mkswap") && first.contains("on"), "{first}");
}
