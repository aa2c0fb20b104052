//! The rendered monitoring files are up to date with mixin/: renders the mixin into a temporary
//! directory (`python3 mixin/render.py --out DIR`, go-jsonnet through its Python binding) and
//! compares every file with the committed one; a committed file under a rendered directory that
//! the mixin no longer renders fails too. Without the binding the test is skipped with a notice,
//! except under `CI=true` (.ci/install-jsonnet.sh installs it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Directories whose every file is rendered (mixin/render.py GENERATED_DIRS).
const GENERATED_DIRS: &[&str] = &[
    "alerts/tests",
    "alerts/tests/drills",
    "alerts/tests/overrides",
    "dashboards",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Relative paths of the regular files under `dir`, recursively.
fn files_under(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            files_under(base, &p, out);
        } else {
            out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

fn gojsonnet_available() -> bool {
    Command::new("python3")
        .args(["-c", "import _gojsonnet"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
#[cfg_attr(
    not(tool_gojsonnet),
    ignore = "needs go-jsonnet (.ci/install-jsonnet.sh)"
)]
fn rendered_files_are_up_to_date() {
    if !gojsonnet_available() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "python3 with gojsonnet is needed and CI=true (run .ci/install-jsonnet.sh)"
        );
        println!("NOTICE: python3 -c 'import _gojsonnet' fails, skipping (.ci/install-jsonnet.sh)");
        return;
    }
    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new("python3")
        .arg(root().join("mixin/render.py"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run mixin/render.py");
    assert!(
        run.status.success(),
        "mixin/render.py failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let mut rendered = BTreeSet::new();
    files_under(out.path(), out.path(), &mut rendered);
    assert!(
        rendered.contains("alerts/itniotech-alerts.yml")
            && rendered.contains("alerts/itniotech-recording.yml"),
        "the rule files' paths are part of the contract (the Kubernetes rendering reads them): {rendered:?}"
    );

    let mut problems = Vec::new();
    for f in &rendered {
        let want = std::fs::read_to_string(out.path().join(f)).unwrap();
        match std::fs::read_to_string(root().join(f)) {
            Ok(have) if have == want => {}
            Ok(have) => {
                let line = have
                    .lines()
                    .zip(want.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| have.lines().count().min(want.lines().count()))
                    + 1;
                problems.push(format!(
                    "{f}: differs from the mixin's rendering (first at line {line})"
                ));
            }
            Err(_) => problems.push(format!("{f}: rendered but not committed")),
        }
    }
    for dir in GENERATED_DIRS {
        let full = root().join(dir);
        let Ok(entries) = std::fs::read_dir(&full) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_file() {
                let rel = p
                    .strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !rendered.contains(&rel) {
                    problems.push(format!(
                        "{rel}: committed, but the mixin does not render it"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the rendered files are out of date; run `python3 mixin/render.py` and commit:\n{}",
        problems.join("\n")
    );
}
