//! The real binary's `test` command and `explain --json`: exit codes, report lines, and the
//! JSON decision's fields.

mod support;

use support::gateway::{API_KEY, API_SECRET};
use support::process::{run, temp_file};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_shipped_cases_pass_against_the_shipped_rules() {
    let (code, out) = run(
        &[
            "test",
            "-c",
            "config/gateway.toml",
            "config/gateway.test.toml",
        ],
        &[],
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 0, "{out}");
    let summary = out.lines().last().unwrap_or_default();
    let (passed, failed) = summary
        .split_once(" passed, ")
        .unwrap_or_else(|| panic!("no summary line in:\n{out}"));
    assert_eq!(failed, "0 failed", "{out}");
    let passed: usize = passed.parse().unwrap();
    assert!(passed >= 32, "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), passed);
    // Every default rule is named by some case.
    let rules = std::fs::read_to_string(format!("{REPO}/config/gateway.toml")).unwrap();
    let cases = std::fs::read_to_string(format!("{REPO}/config/gateway.test.toml")).unwrap();
    for line in rules.lines().filter(|l| l.starts_with("name = ")) {
        let rule = line.trim_start_matches("name = ");
        assert!(
            cases.contains(&format!("rule = {rule}")),
            "no case names rule {rule}"
        );
    }
}

#[test]
fn a_wrong_expectation_fails_with_exit_1() {
    let cases = temp_file(
        "wrong.toml",
        r#"
[[case]]
name = "alice reads her own person"
claims = { sub = "P1", "outseta:accountUid" = "A1", "outseta:isPrimary" = "1" }
request = "GET /api/v1/crm/people/P1?fields=Uid"
expect = "allow"
rule = "read own person"
upstream = "GET /api/v1/crm/people/P1?fields=Uid"

[[case]]
name = "alice reads bob"
claims = { sub = "P1", "outseta:accountUid" = "A1", "outseta:isPrimary" = "1" }
request = "GET /api/v1/crm/people/P2"
expect = "allow"
"#,
    );
    let (code, out) = run(
        &["test", "-c", "config/gateway.toml", cases.to_str().unwrap()],
        &[],
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ok alice reads her own person\n"), "{out}");
    assert!(
        out.contains(
            "FAILED alice reads bob: expected allow, got forbidden (403: rule \"read own person\": condition is false)\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 1 failed\n"), "{out}");
}

#[test]
fn invalid_cases_and_usage_errors() {
    let cases = temp_file(
        "invalid.toml",
        "[[case]]\nname = \"x\"\nrequest = \"GET /x\"\nexpect = \"allow\"\nexpected = \"deny\"\n",
    );
    let (code, out) = run(
        &["test", "-c", "config/gateway.toml", cases.to_str().unwrap()],
        &[],
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown key `expected`"), "{out}");
    assert!(!out.contains("passed"), "{out}");
    let (code, out) = run(
        &["test", "-c", "config/gateway.toml"],
        &[],
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 2, "{out}");
    let (code, out) = run(
        &[
            "test",
            "-c",
            "/nonexistent.toml",
            "config/gateway.test.toml",
        ],
        &[],
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 1, "{out}");
}

fn explain_json(args: &[&str]) -> serde_json::Value {
    let env = [
        ("OUTSETA_API_KEY", API_KEY),
        ("OUTSETA_API_SECRET", API_SECRET),
    ];
    let mut all = vec!["explain", "-c", "config/gateway.toml", "--json"];
    all.extend_from_slice(args);
    let (code, out) = run(&all, &env, Some(REPO.as_ref()));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(API_KEY) && !out.contains(API_SECRET), "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{out}"))
}

#[test]
fn explain_json_is_the_decision() {
    let claims = r#"{"sub":"P1","outseta:accountUid":"A1"}"#;
    let d = explain_json(&[
        "--claims",
        claims,
        "GET",
        "/api/v1/billing/subscriptions?account.uid=A2&limit=5",
    ]);
    assert_eq!(d["decision"], "allow");
    assert_eq!(d["status"], serde_json::Value::Null);
    assert_eq!(d["rule"]["name"], "list own subscriptions");
    assert_eq!(d["rule"]["index"], 7);
    assert_eq!(d["upstream"]["method"], "GET");
    assert_eq!(
        d["upstream"]["target"],
        "/api/v1/billing/subscriptions?limit=5&Account.Uid=A1"
    );
    assert_eq!(d["upstream"]["credential"], "api_key");
    assert_eq!(d["rule"]["cache"], "default (30s)");

    let d = explain_json(&[
        "--claims",
        claims,
        "--body",
        r#"{"Subject":"s","FromPerson":{"Uid":"P2"}}"#,
        "POST",
        "/api/v1/support/cases",
    ]);
    let body: serde_json::Value =
        serde_json::from_str(d["upstream"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"Subject": "s", "FromPerson": {"Uid": "P1"}})
    );

    let d = explain_json(&["--claims", claims, "GET", "/api/v1/crm/people/P2"]);
    assert_eq!(d["decision"], "deny");
    assert_eq!(d["status"], 403);
    assert_eq!(d["code"], "forbidden");
    assert_eq!(d["detail"], "rule \"read own person\": condition is false");
    assert_eq!(d["upstream"], serde_json::Value::Null);

    let d = explain_json(&["--claims", "{}", "GET", "/api/v1/crm/people/P1"]);
    assert_eq!(
        (d["status"].as_u64(), d["code"].as_str()),
        (Some(401), Some("missing_token"))
    );

    // A token is decoded without verification, and the JSON says so.
    let payload = base64_url(r#"{"sub":"P1","outseta:accountUid":"A1"}"#);
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
    let d = explain_json(&["--token", &token, "GET", "/api/v1/crm/people/P1"]);
    assert_eq!(d["decision"], "allow");
    assert!(
        d["notes"][0]
            .as_str()
            .unwrap()
            .contains("WITHOUT verifying its signature"),
        "{d}"
    );
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}
