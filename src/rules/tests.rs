use super::*;
use crate::config::Config;
use crate::rules::canon::canonicalize;
use crate::rules::expr::claims_value;

const RULES: &str = r#"
[outseta]
domain = "x.outseta.com"

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"

[[rule]]
name = "own subscriptions"
methods = ["GET"]
path = "/api/v1/billing/subscriptions"
query_allow = ["fields", "limit", "offset"]
query_set = { "Account.Uid" = "claims['outseta:accountUid']" }

[[rule]]
name = "open case"
methods = ["POST"]
path = "/api/v1/support/cases"
body_allow = ["Subject", "Body"]
body_set = { "FromPerson" = "{'Uid': claims.sub}" }

[[rule]]
name = "own invoice"
methods = ["GET"]
path = "/api/v1/billing/invoices/{uid}"
response_when = "response.Subscription.Account.Uid == claims['outseta:accountUid']"
"#;

fn set() -> Arc<RuleSet> {
    Config::from_toml(RULES, "t").unwrap().rules
}

fn claims() -> crate::rules::expr::Claims {
    claims_value(&serde_json::json!({"sub": "me", "outseta:accountUid": "acct"}))
}

fn decide(rs: &RuleSet, method: &str, pq: &str) -> Result<(usize, Option<String>), Denial> {
    let (p, q) = pq
        .split_once('?')
        .map(|(p, q)| (p, Some(q)))
        .unwrap_or((pq, None));
    let path = canonicalize(p).unwrap();
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (i, params) = rs.find(&method, &path).ok_or(Denial::NoRule)?;
    let query = Query::parse(q);
    let c = claims();
    let input = Input {
        claims: &c,
        params: &params,
        query: &query,
        method: method.as_str(),
    };
    let rule = rs.rule(i).unwrap();
    rule.authorize(rs.root(), &input)
        .map(|q| (i, q.serialize()))
}

#[test]
fn first_match_wins_and_default_denies() {
    let rs = set();
    assert_eq!(decide(&rs, "GET", "/api/v1/crm/people/me"), Ok((0, None)));
    assert!(matches!(
        decide(&rs, "GET", "/api/v1/crm/people/other"),
        Err(Denial::ConditionFalse { .. })
    ));
    assert_eq!(
        decide(&rs, "DELETE", "/api/v1/crm/people/me"),
        Err(Denial::NoRule)
    );
    assert_eq!(
        decide(&rs, "GET", "/api/v1/crm/people"),
        Err(Denial::NoRule)
    );
}

#[test]
fn forced_query_keys_win_and_allow_list_applies() {
    let rs = set();
    for q in [
        "Account.Uid=x",
        "account.uid=x",
        "ACCOUNT.UID=x",
        "Account.Uid=x&Account.Uid=y",
        "aCCount.uID=x&limit=5",
    ] {
        let (_, fwd) = decide(&rs, "GET", &format!("/api/v1/billing/subscriptions?{q}")).unwrap();
        let fwd = Query::parse(fwd.as_deref());
        let vals: Vec<_> = fwd
            .pairs()
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("account.uid"))
            .collect();
        assert_eq!(vals.len(), 1, "{q}");
        assert_eq!(vals[0].1, "acct", "{q}");
    }
    for q in ["Email=x", "EMAIL=x", "limit=5&orderBy=Name"] {
        assert!(
            matches!(
                decide(&rs, "GET", &format!("/api/v1/billing/subscriptions?{q}")),
                Err(Denial::QueryNotAllowed { .. })
            ),
            "{q}"
        );
    }
    assert!(decide(&rs, "GET", "/api/v1/billing/subscriptions?LIMIT=5&Fields=*").is_ok());
}

#[test]
fn missing_claim_in_forced_value_denies() {
    let rs = set();
    let path = canonicalize("/api/v1/billing/subscriptions").unwrap();
    let (i, params) = rs.find(&Method::GET, &path).unwrap();
    let c = claims_value(&serde_json::json!({"sub": "me"}));
    let query = Query::default();
    let input = Input {
        claims: &c,
        params: &params,
        query: &query,
        method: "GET",
    };
    assert!(matches!(
        rs.rule(i).unwrap().authorize(rs.root(), &input),
        Err(Denial::ForcedValue { .. })
    ));
}

#[test]
fn body_rules() {
    let rs = set();
    let path = canonicalize("/api/v1/support/cases").unwrap();
    let (i, params) = rs.find(&Method::POST, &path).unwrap();
    let rule = rs.rule(i).unwrap();
    let c = claims();
    let query = Query::default();
    let input = Input {
        claims: &c,
        params: &params,
        query: &query,
        method: "POST",
    };
    let out = rule
        .rewrite_body(
            rs.root(),
            &input,
            br#"{"subject":"s","FROMPERSON":{"Uid":"victim"}}"#,
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"subject": "s", "FromPerson": {"Uid": "me"}})
    );
    assert!(matches!(
        rule.rewrite_body(rs.root(), &input, br#"{"Email":"x"}"#),
        Err(BodyOutcome::Denied(_))
    ));
    assert!(matches!(
        rule.rewrite_body(rs.root(), &input, b"Subject=x"),
        Err(BodyOutcome::Invalid(_))
    ));
}

#[test]
fn response_checks() {
    let rs = set();
    let path = canonicalize("/api/v1/billing/invoices/inv1").unwrap();
    let (i, params) = rs.find(&Method::GET, &path).unwrap();
    let rule = rs.rule(i).unwrap();
    let c = claims();
    let query = Query::default();
    let input = Input {
        claims: &c,
        params: &params,
        query: &query,
        method: "GET",
    };
    let mine = serde_json::json!({"Subscription": {"Account": {"Uid": "acct"}}});
    let theirs = serde_json::json!({"Subscription": {"Account": {"Uid": "other"}}});
    let shallow = serde_json::json!({"Subscription": {"Account": null}});
    assert_eq!(rule.check_response(rs.root(), &input, &mine), Ok(()));
    assert!(matches!(
        rule.check_response(rs.root(), &input, &theirs),
        Err(Denial::ResponseFalse { .. })
    ));
    assert!(rule.check_response(rs.root(), &input, &shallow).is_err());
}

#[test]
fn fields_default_is_one_segment_and_malformed_is_400() {
    let rs = set();
    assert!(decide(&rs, "GET", "/api/v1/billing/subscriptions?fields=*,Uid").is_ok());
    let traversal = decide(
        &rs,
        "GET",
        "/api/v1/billing/subscriptions?fields=Uid,Account.PersonAccount.Person.Email",
    );
    let Err(d) = traversal else {
        panic!("traversal allowed")
    };
    assert!(
        matches!(d, Denial::FieldNotAllowed { ref path, .. } if path == "Account.PersonAccount.Person.Email")
    );
    assert!(!d.is_malformed());
    assert!(d.to_string().contains("Account.PersonAccount.Person.Email"));
    // every value of a repeated `fields`, in any key case
    assert!(matches!(
        decide(
            &rs,
            "GET",
            "/api/v1/billing/subscriptions?fields=Uid&FIELDS=Account.Uid"
        ),
        Err(Denial::FieldNotAllowed { .. })
    ));
    let malformed = decide(&rs, "GET", "/api/v1/billing/subscriptions?fields=Uid,,Name");
    assert!(
        matches!(malformed, Err(ref d) if d.is_malformed()),
        "{malformed:?}"
    );
}

#[test]
fn forced_keys_drop_suffixed_client_filters() {
    let rs = set();
    let (_, q) = decide(
        &rs,
        "GET",
        "/api/v1/billing/subscriptions?Account.Uid__ne=acct&limit=5",
    )
    .unwrap();
    assert_eq!(q.as_deref(), Some("limit=5&Account.Uid=acct"));
}

mod default_rules_fields {
    use super::*;
    use proptest::prelude::*;

    static PRODUCTION: std::sync::LazyLock<Arc<RuleSet>> = std::sync::LazyLock::new(|| {
        Config::from_toml(include_str!("../../config/gateway.toml"), "gateway.toml")
            .unwrap()
            .rules
    });

    /// A request each default rule allows for Bob (not primary: the invoice rules refuse him
    /// before `fields` is read, and they force `fields` anyway).
    fn allowed_paths() -> Vec<(&'static str, &'static str)> {
        vec![
            ("GET", "/api/v1/profile"),
            ("PUT", "/api/v1/profile"),
            ("GET", "/api/v1/crm/people/bob"),
            ("GET", "/api/v1/crm/accounts/acme"),
            ("GET", "/api/v1/billing/subscriptions"),
            ("GET", "/api/v1/support/cases"),
            ("POST", "/api/v1/support/cases"),
            ("GET", "/api/v1/billing/plans"),
            ("GET", "/api/v1/billing/plans/p1"),
            ("GET", "/api/v1/billing/planfamilies"),
            ("GET", "/api/v1/billing/planfamilies/f1"),
        ]
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            Just("Uid".to_string()),
            Just("Email".to_string()),
            Just("PersonAccount".to_string()),
            Just("Person".to_string()),
            Just("Account".to_string()),
            Just("PrimaryContact".to_string()),
            Just("Plan".to_string()),
            Just("FromPerson".to_string()),
            "[A-Za-z_*,. %]{0,3}",
            "\\PC{0,2}",
        ]
    }

    fn fields_value() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::collection::vec(segment(), 1..6), 1..4).prop_map(|paths| {
            paths
                .iter()
                .map(|p| p.join("."))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    proptest! {
        /// On every default rule that takes `fields`: 400, 403, or every requested path is
        /// matched by one of the rule's own `fields_allow` patterns.
        #[test]
        fn every_default_rule_refuses_or_allows_only_listed_paths(
            value in fields_value(),
            which in 0usize..11,
        ) {
            let rs = &*PRODUCTION;
            let (method, path) = allowed_paths()[which];
            let claims = claims_value(&serde_json::json!({
                "sub": "bob", "outseta:accountUid": "acme", "outseta:isPrimary": "0"
            }));
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let canon = canonicalize(path).unwrap();
            let (i, params) = rs.find(&method, &canon).expect("a default rule");
            let rule = rs.rule(i).unwrap();
            let patterns = rule.fields.patterns().expect("an explicit fields_allow");
            let mut query = Query::default();
            query.push("fields", value.clone());
            let input = Input { claims: &claims, params: &params, query: &query, method: method.as_str() };
            match rule.authorize(rs.root(), &input) {
                Err(d) if d.is_malformed() => {}
                Err(Denial::FieldNotAllowed { .. }) => {}
                Err(other) => prop_assert!(false, "{path} {value:?}: {other}"),
                Ok(q) => {
                    let sent = q.values("fields").collect::<Vec<_>>().join(",");
                    for requested in sent.split(',') {
                        let segs: Vec<&str> = requested.split('.').collect();
                        let covered = patterns.iter().any(|p| {
                            let ps: Vec<&str> = p.split('.').collect();
                            ps.len() == segs.len()
                                && ps.iter().zip(&segs).all(|(p, s)| *p == "*" || p.eq_ignore_ascii_case(s))
                        });
                        prop_assert!(covered, "{path}: {requested:?} forwarded, not in {patterns:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn precheck_renders_its_read_and_judges_the_answer() {
    let rs = Config::from_toml(
        r#"
[outseta]
domain = "x.outseta.com"

[[rule]]
name = "reply"
methods = ["POST"]
path = "/api/v1/support/cases/{uid}/clientresponse/{comment}"
precheck = { path = "/api/v1/support/cases/{uid}", fields = "Uid,FromPerson.Uid", when = "response.FromPerson.Uid == claims.sub" }
"#,
        "t",
    )
    .unwrap()
    .rules;
    let path = canonicalize("/api/v1/support/cases/C1/clientresponse/hi").unwrap();
    let (i, params) = rs.find(&Method::POST, &path).unwrap();
    let rule = rs.rule(i).unwrap();
    let c = claims();
    let claim = |n: &str| c.string(n);
    let (read, query) = rule.precheck_target(&params, &claim).unwrap().unwrap();
    assert_eq!(read, "/api/v1/support/cases/C1");
    assert_eq!(query.as_deref(), Some("fields=Uid%2CFromPerson.Uid"));
    let q = Query::default();
    let input = Input {
        claims: &c,
        params: &params,
        query: &q,
        method: "POST",
    };
    let mine = serde_json::json!({"Uid": "C1", "FromPerson": {"Uid": "me"}});
    let theirs = serde_json::json!({"Uid": "C1", "FromPerson": {"Uid": "you"}});
    assert_eq!(rule.check_precheck(rs.root(), &input, &mine), Ok(()));
    assert!(matches!(
        rule.check_precheck(rs.root(), &input, &theirs),
        Err(Denial::PrecheckFalse { .. })
    ));
    assert!(matches!(
        rule.check_precheck(rs.root(), &input, &serde_json::json!([])),
        Err(Denial::PrecheckError { .. })
    ));
    // a rule without one reads nothing
    let other = set();
    let (j, p) = other
        .find(
            &Method::POST,
            &canonicalize("/api/v1/support/cases").unwrap(),
        )
        .unwrap();
    assert!(other.rule(j).unwrap().precheck_target(&p, &claim).is_none());
}

#[test]
fn precheck_mistakes_are_refused_at_load() {
    let load = |pre: &str, methods: &str| {
        Config::from_toml(
            &format!(
                r#"
[outseta]
domain = "x.outseta.com"

[[rule]]
name = "r"
methods = {methods}
path = "/api/v1/support/cases/{{uid}}/clientresponse/{{comment}}"
precheck = {pre}
"#
            ),
            "t",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    let ok = r#"{ path = "/api/v1/support/cases/{uid}", when = "response.FromPerson.Uid == claims.sub" }"#;
    assert_eq!(load(ok, r#"["POST"]"#), "");
    assert!(load(ok, r#"["GET", "POST"]"#).contains("writes only"));
    for (bad, says) in [
        (r#"{ when = "true" }"#, "missing `path`"),
        (
            r#"{ path = "/api/v1/support/cases/{uid}" }"#,
            "missing `when`",
        ),
        (
            r#"{ path = "/api/v1/support/cases/{other}", when = "true" }"#,
            "{other}",
        ),
        (
            r#"{ path = "/api/v1/tokens", when = "true" }"#,
            "/api/v1/tokens",
        ),
        (
            r#"{ path = "/api/v1/support/cases/{uid}", fields = "a,,b", when = "true" }"#,
            "`fields`",
        ),
        (
            r#"{ path = "/api/v1/support/cases/{uid}", when = "nope.x" }"#,
            "`when`",
        ),
        (r#"{ path = "/x", when = "true", extra = 1 }"#, "extra"),
    ] {
        let e = load(bad, r#"["POST"]"#);
        assert!(e.contains("precheck") && e.contains(says), "{bad}: {e}");
    }
}

/// outsetapy's `…?limit=10?offset=1`: each pair after a `?` is judged like one after `&` —
/// allowed keys pass, forced keys win, anything else is refused.
#[test]
fn pairs_after_a_question_mark_are_judged_like_any_other() {
    let rs = set();
    assert_eq!(
        decide(
            &rs,
            "GET",
            "/api/v1/billing/subscriptions?limit=10?offset=1"
        ),
        Ok((1, Some("limit=10&offset=1&Account.Uid=acct".into())))
    );
    assert_eq!(
        decide(
            &rs,
            "GET",
            "/api/v1/billing/subscriptions?limit=1?Account.Uid=theirs?account.uid__ne=acct"
        ),
        Ok((1, Some("limit=1&Account.Uid=acct".into())))
    );
    assert!(matches!(
        decide(&rs, "GET", "/api/v1/billing/subscriptions?limit=1?Email=x"),
        Err(Denial::QueryNotAllowed { .. })
    ));
}
