//! Records the git revision for `itniotech_exporter_build_info`.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let revision = std::env::var("ITNIOTECH_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ITNIOTECH_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=ITNIOTECH_REVISION");
    // The git directory is not always `.git` (a worktree's `.git` is a file): ask git where
    // HEAD lives, so a commit reruns this script and nothing else does.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = git(&["rev-parse", "--git-path", "refs/heads"]) {
        println!("cargo:rerun-if-changed={refs}");
    }
}
