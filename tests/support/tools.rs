//! External tools some end-to-end tests drive (curl, node, chromium): present, or SKIP loudly —
//! unless `REQUIRE_ALL=1`, where a missing tool fails the test (CI installs them: `.ci/run`).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether `REQUIRE_ALL=1` is set.
pub fn require_all() -> bool {
    std::env::var("REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Whether `cmd args…` runs and exits 0.
pub fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `true` when every check in `missing` is absent (empty); otherwise prints a loud SKIP line
/// and returns `false`, or panics under `REQUIRE_ALL=1`.
pub fn available(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let what = missing.join("; ");
    assert!(
        !require_all(),
        "REQUIRE_ALL=1 but {test} cannot run: {what} (run .ci/run to install)"
    );
    // Straight to the process's stderr: libtest captures `eprintln!`, which would hide the
    // SKIP of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: ########## {test}: {what} (run .ci/run; REQUIRE_ALL=1 turns this into a failure) ##########"
    );
    false
}

/// [`available`] for a test that needs one command: `cmd --version` must run.
pub fn has(test: &str, cmd: &str, hint: &str) -> bool {
    let missing: Vec<String> = need(cmd, hint).into_iter().collect();
    available(test, &missing)
}

/// The missing-tool message for `cmd`, if `cmd --version` does not run.
pub fn need(cmd: &str, hint: &str) -> Option<String> {
    (!runs(cmd, &["--version"])).then(|| format!("`{cmd}` not found ({hint})"))
}

/// The missing-path message for `path`, if it does not exist.
pub fn need_path(path: &Path, hint: &str) -> Option<String> {
    (!path.exists()).then(|| format!("{} is missing ({hint})", path.display()))
}
