//! Records the git revision for `itniotech_exporter_build_info`, and which external tools the
//! tests can use: a test that needs a missing tool is compiled as `#[ignore]`d (visible in the
//! test summary, not a silent pass); `scripts/test.sh` runs ignored tests too, so in CI a missing
//! tool fails.
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

/// The tools tests need, each becoming `cfg(tool_<name>)` when it is on PATH.
const TOOLS: &[(&str, &[&str])] = &[
    ("promtool", &["promtool"]),
    ("prometheus", &["prometheus"]),
    ("amtool", &["amtool"]),
    ("alertmanager", &["alertmanager", "prometheus-alertmanager"]),
    ("kubectl", &["kubectl"]),
    ("systemd_analyze", &["systemd-analyze"]),
];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

fn detect_tools() {
    for (name, programs) in TOOLS {
        println!("cargo::rustc-check-cfg=cfg(tool_{name})");
        if programs.iter().any(|p| on_path(p)) {
            println!("cargo::rustc-cfg=tool_{name}");
        }
    }
    // go-jsonnet is a Python module (.ci/install-jsonnet.sh).
    println!("cargo::rustc-check-cfg=cfg(tool_gojsonnet)");
    let gojsonnet = Command::new("python3")
        .args(["-c", "import _gojsonnet"])
        .output()
        .is_ok_and(|o| o.status.success());
    if gojsonnet {
        println!("cargo::rustc-cfg=tool_gojsonnet");
    }
    // Installing a tool changes a PATH directory: look again then.
    println!("cargo::rerun-if-env-changed=PATH");
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path).filter(|d| d.is_dir()) {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    }
}

fn main() {
    detect_tools();
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
