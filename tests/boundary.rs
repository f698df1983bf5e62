//! The security boundary between users, end to end: what client headers reach Outseta, `fields`
//! traversal through references, default rules no wider than Outseta's own bearer scoping, and
//! cache keys that keep the order of repeated query values.
//!
//! The rule tests run the production rule set (`config/demo.toml`, whose rules equal
//! `config/gateway.toml`'s) in front of the built-in simulator, which follows `fields` through
//! references as Outseta does, scopes invoices to the primary contact for a bearer, and has a
//! person in two accounts (Bob: Acme, his token's account, and Globex).

mod support;

use outseta_gateway::demo::Demo;
use serde_json::Value;
use support::client::{bearer, get, send};
use support::demo::{start, user};
use support::gateway::{AUDIENCE, Gateway, ISSUER};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;

/// The simulator's count of answered requests for `template` ("GET /api/v1/…").
async fn sim_count(d: &Demo, template: &str) -> u64 {
    let stats = get(&format!("{}/__sim/stats", d.simulator), &[])
        .await
        .json();
    stats["requests"][template]
        .as_object()
        .map(|by_status| by_status.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// Every person's email that appears anywhere in `v`.
fn emails(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "Email"
                    && let Some(e) = x.as_str()
                {
                    out.push(e.to_string());
                }
                emails(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| emails(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn fields_traversal_is_refused_on_every_default_rule_that_takes_fields() {
    let d = start(None).await;
    let gw = d.gateway_url();
    let bob = user(&d, "bob@example.com");
    let alice = user(&d, "alice@example.com");
    let (bob_uid, acme) = (&bob.user.person_uid, &bob.user.account_uid);
    let bob_auth = bearer(&bob.token);
    let alice_auth = bearer(&alice.token);

    // Bob may not read Alice's person, and may not reach it through his own either.
    let direct = get(
        &format!("{gw}/api/v1/crm/people/{}", alice.user.person_uid),
        &[("authorization", &bob_auth)],
    )
    .await;
    assert_eq!(direct.status, 403);

    // (method, path and query, who) — each a way from the caller's own record to others'.
    let deep = "PersonAccount.Account.PersonAccount.Person.*";
    let attacks: Vec<(&str, String, &str)> = vec![
        (
            "GET",
            format!("/api/v1/crm/people/{bob_uid}?fields=Uid,{deep}"),
            &bob_auth,
        ),
        (
            "GET",
            format!("/api/v1/crm/accounts/{acme}?fields=*,PrimaryContact.*"),
            &bob_auth,
        ),
        (
            "GET",
            format!("/api/v1/crm/accounts/{acme}?fields=*,PersonAccount.Person.Email"),
            &bob_auth,
        ),
        (
            "GET",
            format!(
                "/api/v1/crm/accounts/{acme}?fields=PersonAccount.Person.PersonAccount.Account.*"
            ),
            &bob_auth,
        ),
        (
            "GET",
            "/api/v1/billing/subscriptions?fields=Uid,Account.PersonAccount.Person.*".into(),
            &bob_auth,
        ),
        (
            "GET",
            format!("/api/v1/billing/transactions/{acme}?fields=Uid,Account.PrimaryContact.*"),
            &alice_auth,
        ),
        (
            "GET",
            format!("/api/v1/profile?fields=Uid,{deep}"),
            &bob_auth,
        ),
        (
            "GET",
            "/api/v1/support/cases?fields=Uid,FromPerson.PersonAccount.Account.PrimaryContact.*"
                .into(),
            &alice_auth,
        ),
        (
            "GET",
            "/api/v1/billing/plans?fields=Uid,PlanFamily.Plans.*".into(),
            &bob_auth,
        ),
        (
            "GET",
            "/api/v1/billing/planfamilies?fields=Uid,Plans.PlanFamily.*".into(),
            &bob_auth,
        ),
    ];
    for (method, pq, auth) in &attacks {
        let r = send(method, &format!("{gw}{pq}"), &[("authorization", auth)], "").await;
        assert_eq!(r.status, 403, "{method} {pq}: {}", r.text());
        assert_eq!(r.code(), "forbidden");
        let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains("field path"), "{pq}: {detail}");
    }
    // Writes that take `fields` are judged before their body is read.
    for (method, path) in [
        ("PUT", "/api/v1/profile"),
        ("POST", "/api/v1/support/cases"),
    ] {
        let r = send(
            method,
            &format!("{gw}{path}?fields=Uid,{deep}"),
            &[
                ("authorization", &bob_auth),
                ("content-type", "application/json"),
            ],
            r#"{"FirstName":"B","Subject":"s","Body":"b"}"#,
        )
        .await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
    assert_eq!(sim_count(&d, "GET /api/v1/crm/people/{uid}").await, 0);
    assert_eq!(sim_count(&d, "PUT /api/v1/profile").await, 0);

    // Malformed selections are 400, not forwarded.
    for bad in ["Uid,,Email", "Uid%20,Email", "Per*", "A..B"] {
        let r = get(
            &format!("{gw}/api/v1/crm/people/{bob_uid}?fields={bad}"),
            &[("authorization", &bob_auth)],
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.code(), "bad_request");
    }

    // What an SPA needs still works. The npm client's accounts default: members' Uids only.
    let r = get(
        &format!(
            "{gw}/api/v1/crm/accounts/{acme}?fields=*,PersonAccount.*,PersonAccount.Person.Uid"
        ),
        &[("authorization", &bob_auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let account = r.json();
    let members: Vec<&str> = account["PersonAccount"]
        .as_array()
        .expect("memberships")
        .iter()
        .filter_map(|m| m["Person"]["Uid"].as_str())
        .collect();
    assert!(
        members.contains(&alice.user.person_uid.as_str()),
        "{account}"
    );
    let mut seen = Vec::new();
    emails(&account, &mut seen);
    assert!(seen.is_empty(), "no member's email: {seen:?}");
    // Bob's own memberships, both tenants, by name only.
    let r = get(
        &format!(
            "{gw}/api/v1/crm/people/{bob_uid}?fields=Uid,PersonAccount.*,PersonAccount.Account.Name"
        ),
        &[("authorization", &bob_auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let person = r.json();
    let names: Vec<&str> = person["PersonAccount"]
        .as_array()
        .expect("memberships")
        .iter()
        .filter_map(|m| m["Account"]["Name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "Bob is in two accounts: {person}");
    let r = get(
        &format!("{gw}/api/v1/billing/subscriptions?fields=*,Plan.*"),
        &[("authorization", &bob_auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    d.shutdown().await;
}

#[tokio::test]
async fn invoices_and_transactions_are_for_the_primary_contact_only() {
    let d = start(None).await;
    let gw = d.gateway_url();
    let alice = user(&d, "alice@example.com");
    let bob = user(&d, "bob@example.com");
    assert_eq!(alice.user.account_uid, bob.user.account_uid, "one account");

    // The reference: Outseta (the simulator) gives Bob's own bearer no invoice.
    let own = get(
        &format!("{}/api/v1/billing/invoices", d.simulator),
        &[("authorization", &bearer(&bob.token))],
    )
    .await;
    assert_eq!(own.status, 200);
    assert_eq!(own.json()["items"].as_array().map(Vec::len), Some(0));

    let list = get(
        &format!("{gw}/api/v1/billing/invoices"),
        &[("authorization", &bearer(&alice.token))],
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text());
    let invoice = list.json()["items"][0]["Uid"]
        .as_str()
        .expect("Alice, the primary contact, lists her account's invoices")
        .to_string();
    let acme = &alice.user.account_uid;
    for (path, status) in [
        ("/api/v1/billing/invoices".to_string(), 403),
        (format!("/api/v1/billing/invoices/{invoice}"), 403),
        (format!("/api/v1/billing/transactions/{acme}"), 403),
    ] {
        let r = get(
            &format!("{gw}{path}"),
            &[("authorization", &bearer(&bob.token))],
        )
        .await;
        assert_eq!(r.status, status, "Bob {path}: {}", r.text());
        let r = get(
            &format!("{gw}{path}"),
            &[("authorization", &bearer(&alice.token))],
        )
        .await;
        assert_eq!(r.status, 200, "Alice {path}: {}", r.text());
    }
    d.shutdown().await;
}

#[tokio::test]
async fn repeated_query_values_in_another_order_are_another_upstream_request() {
    let d = start(None).await;
    let gw = d.gateway_url();
    let alice = bearer(&user(&d, "alice@example.com").token);
    let template = "GET /api/v1/billing/subscriptions";
    let mut statuses = Vec::new();
    for q in [
        "orderBy=Uid+DESC&orderBy=StartDate",
        "orderBy=StartDate&orderBy=Uid+DESC",
        "limit=5&orderBy=Uid+DESC&orderBy=StartDate",
        "orderBy=Uid+DESC&limit=5&orderBy=StartDate",
    ] {
        let r = get(
            &format!("{gw}/api/v1/billing/subscriptions?{q}"),
            &[("authorization", &alice)],
        )
        .await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        statuses.push(r.header("cache-status").unwrap_or_default());
    }
    // The two orders are two calls; moving another key around is the same request (a hit).
    assert_eq!(sim_count(&d, template).await, 3, "{statuses:?}");
    assert!(statuses[1].contains("fwd=miss"), "{statuses:?}");
    assert!(statuses[3].contains("hit"), "{statuses:?}");
    d.shutdown().await;
}

/// A GET dressed with every header that could change what Outseta does or caches.
const ATTACK_HEADERS: &[(&str, &str)] = &[
    ("x-http-method-override", "DELETE"),
    ("x-http-method", "DELETE"),
    ("x-method-override", "DELETE"),
    ("x-original-url", "/api/v1/crm/people/someone-else"),
    ("x-rewrite-url", "/api/v1/crm/people/someone-else"),
    ("forwarded", "for=203.0.113.9;host=evil"),
    ("x-forwarded-for", "203.0.113.9"),
    ("x-forwarded-host", "evil.example"),
    ("x-real-ip", "203.0.113.9"),
    ("range", "bytes=0-10"),
    ("if-none-match", "\"abc\""),
    ("if-modified-since", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ("cache-control", "no-cache"),
    ("pragma", "no-cache"),
    ("cookie", "session=1"),
    ("x-custom", "1"),
    ("accept", "application/json"),
    ("accept-language", "de-CH"),
    (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
    ("tracestate", "vendor=1"),
];

const HEADER_RULES: &str = r#"
[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"

[[rule]]
name = "cached own account"
methods = ["GET"]
path = "/api/v1/crm/accounts/{uid}"
when = "path.uid == claims['outseta:accountUid']"
cache = "60s"
"#;

fn names(h: &http::HeaderMap) -> Vec<String> {
    let mut n: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
    n.sort();
    n.dedup();
    n
}

#[tokio::test]
async fn only_allow_listed_headers_reach_outseta_and_cacheable_rules_forward_trace_headers_only() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let gw = Gateway::start(&mock, HEADER_RULES).await;
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
    headers.extend_from_slice(ATTACK_HEADERS);

    let r = get(&gw.url("/api/v1/crm/people/u1"), &headers).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(&gw.url("/api/v1/crm/accounts/acct-1"), &headers).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "GET");
    // hyper's client adds only `host` (the upstream's) to what the gateway sets.
    let framing = ["authorization", "host", "x-request-id", "accept-encoding"];
    let plain: Vec<String> = names(&seen[0].headers)
        .into_iter()
        .filter(|n| !framing.contains(&n.as_str()))
        .collect();
    assert_eq!(
        plain,
        ["accept", "accept-language", "traceparent", "tracestate"],
        "not cacheable: the default allow-list"
    );
    let cached: Vec<String> = names(&seen[1].headers)
        .into_iter()
        .filter(|n| !framing.contains(&n.as_str()))
        .collect();
    assert_eq!(
        cached,
        ["traceparent", "tracestate"],
        "cacheable: trace headers only"
    );
    for s in &seen {
        assert_eq!(
            s.headers.get("host").and_then(|h| h.to_str().ok()),
            mock.base_url().strip_prefix("http://"),
            "Host is the upstream's"
        );
        let auth: Vec<_> = s.headers.get_all("authorization").iter().collect();
        assert_eq!(auth.len(), 1);
        assert!(auth[0].to_str().unwrap_or_default().starts_with("Outseta "));
    }
    gw.shutdown().await;
}
