//! `swapctl man`: a page per command with EXIT STATUS, FILES and ENVIRONMENT, plus
//! `swapctl.toml(5)`; `--dir` writes them all. Every page is snapshot-tested.

#![allow(clippy::unwrap_used)] // tests may unwrap

#[macro_use]
mod common;

use std::path::Path;

const COMMANDS: [&str; 14] = [
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
    "completions",
    "man",
];

#[test]
fn man_dir_writes_a_page_per_command_and_the_config_page() {
    let dir = tempfile::Builder::new()
        .prefix("swapkit-man")
        .tempdir()
        .unwrap();
    let out = dir.path().join("man");
    let none = Path::new("/nonexistent/swapkit.sock");
    let run = common::swapctl_env(&["man", "--dir", out.to_str().unwrap()], none);
    assert!(run.status.success(), "{}", common::stderr(&run));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = COMMANDS.iter().map(|c| format!("swapctl-{c}.1")).collect();
    want.extend(["swapctl.1".into(), "swapctl.toml.5".into()]);
    want.sort();
    assert_eq!(names, want);
    for name in &names {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
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
