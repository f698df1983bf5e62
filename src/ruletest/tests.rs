use super::*;

const CONFIG: &str = r#"
[outseta]
domain = "yourco.outseta.com"

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"
query_allow = ["fields"]

[[rule]]
name = "list own subscriptions"
methods = ["GET"]
path = "/api/v1/billing/subscriptions"
query_allow = ["limit"]
query_set = { "Account.Uid" = "claims['outseta:accountUid']" }

[[rule]]
name = "open a support case"
methods = ["POST"]
path = "/api/v1/support/cases"
body_allow = ["Subject"]
body_set = { "FromPerson" = "{'Uid': claims.sub}" }

[[rule]]
name = "list plans"
methods = ["GET"]
path = "/api/v1/billing/plans"
auth = "optional"
credential = "none"
"#;

fn config() -> Config {
    Config::from_toml(CONFIG, "test").unwrap()
}

fn one(text: &str) -> Case {
    let mut cases = parse_cases(text, "cases.toml", &config()).unwrap();
    assert_eq!(cases.len(), 1);
    cases.remove(0)
}

fn problems(text: &str) -> Vec<String> {
    parse_cases(text, "cases.toml", &config()).unwrap_err()
}

fn verdict(text: &str) -> Result<(), String> {
    let case = one(text);
    check(&case, &explain::decide(&config(), &case.probe))
}

const ALICE: &str =
    r#"claims = { sub = "P1", "outseta:accountUid" = "A1", "outseta:isPrimary" = "1" }"#;

#[test]
fn parses_every_key() {
    let c = one(&format!(
        r#"
[[case]]
name = "alice"
{ALICE}
request = "POST /api/v1/support/cases?x=1"
headers = {{ "X-HTTP-Method-Override" = "DELETE" }}
body = '{{"Subject":"s"}}'
expect = "allow"
rule = "open a support case"
upstream = "POST /api/v1/support/cases?x=1"
upstream_body = '{{"Subject":"s","FromPerson":{{"Uid":"P1"}}}}'
upstream_headers = {{ "Content-Type" = "application/json" }}
upstream_headers_absent = ["cookie"]
"#
    ));
    assert_eq!(c.name, "alice");
    assert_eq!(c.probe.method, Method::POST);
    assert_eq!(c.probe.path_and_query, "/api/v1/support/cases?x=1");
    assert_eq!(c.probe.claims["outseta:isPrimary"], "1");
    assert_eq!(c.probe.headers["x-http-method-override"], "DELETE");
    assert_eq!(c.probe.body.as_deref(), Some(&br#"{"Subject":"s"}"#[..]));
    assert_eq!(c.expect, Expect::Allow);
    assert_eq!(
        c.upstream_body,
        Some(serde_json::json!({"FromPerson": {"Uid": "P1"}, "Subject": "s"}))
    );
    assert_eq!(c.upstream_headers[0].0, "content-type");
    assert_eq!(c.upstream_headers_absent[0], "cookie");
}

#[test]
fn absent_claims_mean_no_token() {
    let c = one("[[case]]\nname = \"anon\"\nrequest = \"GET /x\"\nexpect = \"not_found\"\n");
    assert_eq!(c.probe.claims, serde_json::json!({}));
    assert_eq!(c.expect, Expect::Code("not_found"));
}

#[test]
fn expect_codes_come_from_gateway_error() {
    assert_eq!(
        refusal_codes(),
        ["bad_request", "missing_token", "forbidden", "not_found"]
    );
}

#[test]
fn every_problem_is_reported_with_its_case() {
    let p = problems(
        r#"
stray = 1
[[case]]
name = "x"
request = "GET /api/v1/crm/people/P1"
expect = "forbiden"
rule = "nope"
bogus = 2
[[case]]
request = "get /x"
[[case]]
name = "y"
request = "GET"
expect = "deny"
upstream = "GET /x"
upstream_body = "{not json"
"#,
    );
    let all = p.join("\n");
    for want in [
        "unknown key `stray` at top level",
        "case #1 (\"x\"): unknown key `bogus`",
        "case #1 (\"x\"): `expect`: \"forbiden\" is not",
        "`rule`: no rule is named \"nope\"",
        "case #2: missing `name`",
        "case #2: `request`: \"get\" is not an upper-case HTTP method",
        "case #2: missing `expect`",
        "case #3 (\"y\"): `request`: \"GET\" is not \"METHOD /path?query\"",
        "case #3 (\"y\"): `upstream`, `upstream_body` and `upstream_headers*` describe a forwarded request",
        "case #3 (\"y\"): `upstream_body` is not JSON",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}

#[test]
fn syntax_errors_and_wrong_shapes_are_problems() {
    assert!(problems("[[case]\n")[0].contains("TOML syntax error"));
    assert!(problems("case = 1\n")[0].contains("array of tables"));
    assert!(problems("[[case]]\nname = 1\n")[0].contains("case #1"));
}

#[test]
fn allow_and_deny_compare_with_the_decision() {
    let own = format!(
        "[[case]]\nname = \"own\"\n{ALICE}\nrequest = \"GET /api/v1/crm/people/P1\"\nexpect = \"allow\"\nrule = \"read own person\"\n"
    );
    assert_eq!(verdict(&own), Ok(()));
    let other = format!(
        "[[case]]\nname = \"other\"\n{ALICE}\nrequest = \"GET /api/v1/crm/people/P2\"\nexpect = \"allow\"\n"
    );
    let why = verdict(&other).unwrap_err();
    assert_eq!(
        why,
        "expected allow, got forbidden (403: rule \"read own person\": condition is false)"
    );
    let deny = other.replace("\"allow\"", "\"deny\"");
    assert_eq!(verdict(&deny), Ok(()));
    let code = other.replace("\"allow\"", "\"bad_request\"");
    assert!(
        verdict(&code)
            .unwrap_err()
            .starts_with("expected bad_request, got forbidden")
    );
}

#[test]
fn refusal_codes_of_each_step() {
    let case = |req: &str, claims: &str, expect: &str| {
        verdict(&format!(
            "[[case]]\nname = \"c\"\n{claims}\nrequest = \"{req}\"\nexpect = \"{expect}\"\n"
        ))
    };
    assert_eq!(
        case("GET /api/v1/crm/people/P1/../P2", ALICE, "bad_request"),
        Ok(())
    );
    assert_eq!(case("GET /api/v1/crm/people", ALICE, "forbidden"), Ok(()));
    assert_eq!(case("GET /elsewhere", ALICE, "not_found"), Ok(()));
    assert_eq!(
        case("GET /api/v1/crm/people/P1", "", "missing_token"),
        Ok(())
    );
    assert_eq!(
        case("GET /api/v1/crm/people/P1", "claims = {}", "missing_token"),
        Ok(())
    );
    assert_eq!(
        case("GET /api/v1/crm/people/P1?limit=1", ALICE, "forbidden"),
        Ok(())
    );
    assert_eq!(case("GET /api/v1/billing/plans", "", "allow"), Ok(()));
}

#[test]
fn rule_and_upstream_mismatches_are_named() {
    let why = verdict(&format!(
        r#"[[case]]
name = "subs"
{ALICE}
request = "GET /api/v1/billing/subscriptions?account.uid=A2&limit=5"
expect = "allow"
rule = "list plans"
upstream = "GET /api/v1/billing/subscriptions?limit=5"
"#
    ))
    .unwrap_err();
    assert_eq!(
        why,
        "expected rule \"list plans\", got rule \"list own subscriptions\"; \
         expected upstream \"GET /api/v1/billing/subscriptions?limit=5\", \
         got \"GET /api/v1/billing/subscriptions?limit=5&Account.Uid=A1\""
    );
}

/// A case's request is read as `serve` reads it: outsetapy's `?limit=5?Account.Uid=A2` is two
/// pairs, judged and forwarded joined with `&`.
#[test]
fn a_question_mark_in_a_cases_query_separates_pairs() {
    assert_eq!(
        verdict(&format!(
            r#"[[case]]
name = "outsetapy-style query"
{ALICE}
request = "GET /api/v1/billing/subscriptions?limit=5?Account.Uid=A2"
expect = "allow"
upstream = "GET /api/v1/billing/subscriptions?limit=5&Account.Uid=A1"
"#
        )),
        Ok(())
    );
    assert_eq!(
        verdict(&format!(
            r#"[[case]]
name = "a key after `?` is judged"
{ALICE}
request = "GET /api/v1/billing/subscriptions?limit=5?Email=x"
expect = "forbidden"
"#
        )),
        Ok(())
    );
}

#[test]
fn bodies_compare_as_json_values() {
    let text = |body: &str, up: &str, expect: &str| {
        format!(
            "[[case]]\nname = \"b\"\n{ALICE}\nrequest = \"POST /api/v1/support/cases\"\nbody = '{body}'\nexpect = \"{expect}\"\n{up}\n"
        )
    };
    // Key order and spacing do not matter; the forced value replaces the client's.
    assert_eq!(
        verdict(&text(
            r#"{"fromperson":{"Uid":"P2"},"Subject":"s"}"#,
            r#"upstream_body = '{ "Subject": "s", "FromPerson": { "Uid": "P1" } }'"#,
            "allow"
        )),
        Ok(())
    );
    let why = verdict(&text(
        r#"{"Subject":"s"}"#,
        r#"upstream_body = '{"Subject":"t","FromPerson":{"Uid":"P1"}}'"#,
        "allow",
    ))
    .unwrap_err();
    assert!(why.starts_with("expected upstream_body {"), "{why}");
    assert_eq!(verdict(&text("not json", "", "bad_request")), Ok(()));
    assert_eq!(verdict(&text(r#"{"Priority":1}"#, "", "forbidden")), Ok(()));
}

#[test]
fn upstream_headers_present_and_absent() {
    let text = |req: &str, extra: &str| {
        format!(
            "[[case]]\nname = \"h\"\n{ALICE}\nrequest = \"{req}\"\nheaders = {{ Cookie = \"a=b\", Accept = \"application/json\" }}\nexpect = \"allow\"\n{extra}\n"
        )
    };
    assert_eq!(
        verdict(&text(
            "GET /api/v1/crm/people/P1",
            r#"upstream_headers = { accept = "application/json", authorization = "Outseta <api key>:<secret>" }
upstream_headers_absent = ["cookie"]"#
        )),
        Ok(())
    );
    assert_eq!(
        verdict(&text(
            "GET /api/v1/billing/plans",
            r#"upstream_headers_absent = ["authorization"]"#
        )),
        Ok(())
    );
    let why = verdict(&text(
        "GET /api/v1/crm/people/P1",
        r#"upstream_headers_absent = ["accept"]
upstream_headers = { "x-missing" = "1" }"#,
    ))
    .unwrap_err();
    assert_eq!(
        why,
        "expected upstream header x-missing: 1, got no x-missing; \
         expected no upstream header accept, got accept: application/json"
    );
}

#[test]
fn report_lines_and_summary() {
    let cfg = config();
    let cases = parse_cases(
        &format!(
            "[[case]]\nname = \"good\"\n{ALICE}\nrequest = \"GET /api/v1/crm/people/P1\"\nexpect = \"allow\"\n\
             [[case]]\nname = \"bad\"\n{ALICE}\nrequest = \"GET /api/v1/crm/people/P2\"\nexpect = \"allow\"\n"
        ),
        "c",
        &cfg,
    )
    .unwrap();
    let r = run(&cfg, &cases);
    assert_eq!((r.passed, r.failed), (1, 1));
    let text = r.render();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ok good");
    assert!(lines[1].starts_with("FAILED bad: expected allow, got forbidden"));
    assert_eq!(lines[2], "1 passed, 1 failed");
}

#[test]
fn duplicate_names_across_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("ruletest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = "[[case]]\nname = \"same\"\nrequest = \"GET /x\"\nexpect = \"not_found\"\n";
    let (a, b) = (dir.join("a.toml"), dir.join("b.toml"));
    std::fs::write(&a, text).unwrap();
    std::fs::write(&b, text).unwrap();
    let p = run_files(&config(), &[&a, &b]).unwrap_err();
    assert_eq!(p, ["duplicate case name \"same\""]);
    let p = run_files(&config(), &[dir.join("missing.toml")]).unwrap_err();
    assert!(p[0].contains("cannot read the file"), "{p:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
