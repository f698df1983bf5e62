//! The request path end to end: credential swap, per-user rules, path safety, rewrites,
//! upstream failures, limits, CORS.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::client::{bearer, get, send};
use support::gateway::{API_KEY, API_SECRET, AUDIENCE, Gateway, ISSUER, RULES};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;

struct Env {
    mock: MockOutseta,
    gw: Gateway,
    key: SigningKey,
}

impl Env {
    async fn new() -> Self {
        let key = SigningKey::generate("k1");
        let mock = MockOutseta::start(&[&key]).await;
        let gw = Gateway::start(&mock, RULES).await;
        Self { mock, gw, key }
    }

    fn token(&self, sub: &str, account: &str) -> String {
        self.key
            .token(&keys::claims(ISSUER, AUDIENCE, sub, account))
    }

    fn auth(&self, sub: &str) -> String {
        bearer(&self.token(sub, "acct-1"))
    }
}

#[tokio::test]
async fn upstream_sees_exactly_the_api_key_and_never_client_credentials() {
    let env = Env::new().await;
    let auth = env.auth("u1");
    let r = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[
            ("authorization", &auth),
            ("cookie", "Outseta.nocode.accessToken=abc; session=1"),
            ("proxy-authorization", "Basic cHJveHk6cHc="),
            ("x-request-id", "req-123"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Uid"], "u1");
    assert_eq!(r.header("x-request-id").as_deref(), Some("req-123"));
    assert!(
        r.header("set-cookie").is_none(),
        "upstream cookies are not passed on"
    );
    let seen = env.mock.seen();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    let all: Vec<_> = h.get_all("authorization").iter().collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0], format!("Outseta {API_KEY}:{API_SECRET}").as_str());
    assert!(h.get("cookie").is_none());
    assert!(h.get("proxy-authorization").is_none());
    assert_eq!(h.get("x-request-id").unwrap(), "req-123");
    assert_eq!(
        h.get("host").unwrap().to_str().unwrap(),
        env.mock.addr.to_string()
    );
    for (_, v) in h {
        assert!(
            !v.to_str().unwrap_or("").contains(&auth[7..]),
            "the bearer token never goes upstream"
        );
    }
}

#[tokio::test]
async fn request_id_is_generated_when_absent() {
    let env = Env::new().await;
    let r = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[("authorization", &env.auth("u1"))],
    )
    .await;
    let id = r.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(
        env.mock.seen()[0].headers.get("x-request-id").unwrap(),
        id.as_str()
    );
    // A hostile one is replaced.
    let r = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[
            ("authorization", &env.auth("u1")),
            ("x-request-id", "a b<script>"),
        ],
    )
    .await;
    let id = r.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(
        env.mock.seen()[1].headers.get("x-request-id").unwrap(),
        id.as_str(),
        "the upstream gets the replacement, not the client's value"
    );
}

#[tokio::test]
async fn user_credential_forwards_the_bearer_and_none_sends_nothing() {
    let env = Env::new().await;
    let token = env.token("u1", "acct-1");
    let r = get(
        &env.gw.url("/api/v1/profile"),
        &[("authorization", &format!("bearer {token}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        env.mock.seen()[0].headers.get("authorization").unwrap(),
        format!("bearer {token}").as_str()
    );
    env.mock.clear_seen();
    // auth = "optional", credential = "none": a token is verified but not forwarded.
    let r = get(
        &env.gw.url("/api/v1/billing/plans"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(r.status, 200);
    let r2 = get(&env.gw.url("/api/v1/billing/plans"), &[]).await;
    assert_eq!(r2.status, 200);
    for s in env.mock.seen() {
        assert!(s.headers.get("authorization").is_none());
    }
    // auth = "none": a bad token is ignored, and stripped.
    env.mock.clear_seen();
    let r = send(
        "POST",
        &env.gw.url("/api/v1/tokens"),
        &[
            ("authorization", "Bearer garbage"),
            ("content-type", "application/json"),
        ],
        r#"{"username":"a","password":"b"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(env.mock.seen()[0].headers.get("authorization").is_none());
    assert_eq!(env.mock.seen()[0].path_and_query, "/api/v1/tokens");
}

#[tokio::test]
async fn own_person_allowed_other_person_forbidden() {
    let env = Env::new().await;
    let r = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[("authorization", &env.auth("u1"))],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(
        &env.gw.url("/api/v1/crm/people/u2"),
        &[("authorization", &env.auth("u1"))],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "forbidden");
    assert!(
        r.json()["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(env.mock.seen().len(), 1);
    // Default deny: admin endpoints and unknown paths.
    for (m, p, status, code) in [
        ("GET", "/api/v1/crm/people", 403, "forbidden"),
        ("DELETE", "/api/v1/crm/people/u1", 403, "forbidden"),
        ("GET", "/api/v1/crm/accounts", 403, "forbidden"),
        ("POST", "/api/v1/tokens", 200, ""),
        ("GET", "/something/else", 404, "not_found"),
    ] {
        let r = send(
            m,
            &env.gw.url(p),
            &[("authorization", &env.auth("u1"))],
            "{}",
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{m} {p}");
    }
}

#[tokio::test]
async fn path_traversal_variants_are_refused_and_never_reach_upstream() {
    let env = Env::new().await;
    let auth = env.auth("u1");
    for p in [
        "/api/v1/crm/people/u1/../u2",
        "/api/v1/crm/people/u1/%2e%2e/u2",
        "/api/v1/crm/people/u1/%2E%2E/u2",
        "/api/v1/crm/people/u1%2F..%2Fu2",
        "/api/v1/crm/people/u1%2fu2",
        "/api/v1/crm/people/u1%5C..%5Cu2",
        "/api/v1/crm/people/./u1",
        "/api/v1/crm//people/u1",
        "/api/v1/crm/people/u1//",
        "/api/v1/crm/people/u1%00",
        "/api/v1/crm/people/u1%252F..%252Fu2",
    ] {
        let r = get(&env.gw.url(p), &[("authorization", &auth)]).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "bad_request"),
            "{p}: {}",
            r.text()
        );
    }
    assert!(env.mock.seen().is_empty());
    // One trailing slash is the path without it, as Outseta reads it: judged and forwarded
    // without the slash.
    let r = get(
        &env.gw.url("/api/v1/crm/people/u1/"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = env.mock.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/api/v1/crm/people/u1");
    env.mock.clear_seen();
    let r = get(
        &env.gw.url("/api/v1/crm/people/u2/"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 403);
    // Encoded unreserved characters are decoded before matching: %75%32 is "u2".
    let r = get(
        &env.gw.url("/api/v1/crm/people/%75%32"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 403);
    // Case variants of the route still hit the rule (Outseta's routes ignore case).
    let r = get(
        &env.gw.url("/API/V1/CRM/People/u2"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = get(
        &env.gw.url("/API/V1/CRM/People/%75%31"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200);
    for s in env.mock.seen() {
        assert!(
            !s.path_and_query.contains("u2"),
            "another user's uid reached upstream: {}",
            s.path_and_query
        );
        assert_eq!(s.path_and_query, "/API/V1/CRM/People/u1");
    }
}

#[tokio::test]
async fn forced_query_keys_win_over_client_values() {
    let env = Env::new().await;
    let auth = bearer(&env.token("u1", "mine"));
    for q in [
        "Account.Uid=x",
        "account.uid=x",
        "ACCOUNT.UID=x",
        "Account.Uid=x&Account.Uid=y&account.UID=z",
        "Account%2EUid=x",
        "limit=5&Account.Uid=x&offset=1",
    ] {
        env.mock.clear_seen();
        let r = get(
            &env.gw.url(&format!("/api/v1/billing/subscriptions?{q}")),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let seen = &env.mock.seen()[0];
        let query = seen.path_and_query.split_once('?').unwrap().1;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let forced: Vec<_> = pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("account.uid"))
            .collect();
        assert_eq!(forced.len(), 1, "{q}: {pairs:?}");
        assert_eq!(forced[0].1, "mine");
    }
}

#[tokio::test]
async fn disallowed_query_and_body_keys_are_403_and_nothing_reaches_upstream() {
    let env = Env::new().await;
    let auth = env.auth("u1");
    for q in ["Email=x", "EMAIL=x", "limit=1&Account.Email=y", "q=alice"] {
        let r = get(
            &env.gw.url(&format!("/api/v1/billing/subscriptions?{q}")),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (403, "forbidden"), "{q}");
    }
    for body in [
        r#"{"Email":"x"}"#,
        r#"{"FirstName":"a","EMAIL":"x"}"#,
        r#"{"firstname":"a","PasswordHash":"x"}"#,
    ] {
        let r = send(
            "PUT",
            &env.gw.url("/api/v1/profile"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
        assert_eq!((r.status, r.code().as_str()), (403, "forbidden"), "{body}");
    }
    assert!(env.mock.seen().is_empty());
    // Allowed keys in any case go through.
    let r = send(
        "PUT",
        &env.gw.url("/api/v1/profile"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        r#"{"firstname":"A","LastName":"B"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn body_set_forces_the_caller_and_non_json_is_400() {
    let env = Env::new().await;
    let auth = env.auth("u1");
    let r = send(
        "POST",
        &env.gw.url("/api/v1/support/cases"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        r#"{"Subject":"help","fromPerson":{"Uid":"victim"}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent: serde_json::Value = serde_json::from_slice(&env.mock.seen()[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"Subject": "help", "FromPerson": {"Uid": "u1"}})
    );
    for body in ["Subject=help", "[1]", "\"s\"", ""] {
        let r = send(
            "POST",
            &env.gw.url("/api/v1/support/cases"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "bad_request"),
            "{body:?}"
        );
    }
    assert_eq!(env.mock.seen().len(), 1);
}

#[tokio::test]
async fn response_when_false_is_403_without_the_body() {
    let env = Env::new().await;
    let auth = bearer(&env.token("u1", "acct-1"));
    env.mock.set_invoice_owner("acct-1");
    let r = get(
        &env.gw.url("/api/v1/billing/invoices/inv1"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("invoice-body-marker"));
    env.mock.set_invoice_owner("someone-else");
    let r = get(
        &env.gw.url("/api/v1/billing/invoices/inv1"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    assert!(!r.text().contains("invoice-body-marker"));
    assert!(!r.text().contains("someone-else"));
    // The upstream was asked for an uncompressed body it can check.
    assert_eq!(
        env.mock.seen()[1].headers.get("accept-encoding").unwrap(),
        "identity"
    );
}

#[tokio::test]
async fn outseta_errors_pass_through_unchanged() {
    let env = Env::new().await;
    env.mock.set_status(404, r#"{"Message":"not here"}"#);
    let r = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[("authorization", &env.auth("u1"))],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), r#"{"Message":"not here"}"#);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn upstream_refused_is_502_fast_and_slow_upstream_is_504() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    // Point the upstream at a closed port (bind then drop to find one).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let text = support::gateway::config_text(&mock, RULES).replace(
        &format!("upstream = \"{}\"", mock.base_url()),
        &format!("upstream = \"http://{closed}\""),
    );
    let gw = Gateway::start_with(
        &mock,
        outseta_gateway::Config::from_toml(&text, "t").unwrap(),
    )
    .await;
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let t = Instant::now();
    let r = get(
        &gw.url("/api/v1/crm/people/u1"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (502, "upstream_unavailable"));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "refused must fail fast: {:?}",
        t.elapsed()
    );
    gw.shutdown().await;

    let gw = Gateway::start(&mock, RULES).await; // upstream_timeout = 2s
    mock.set_delay(Duration::from_secs(4));
    let t = Instant::now();
    let r = get(&gw.url("/api/v1/slow/x"), &[("authorization", &auth)]).await;
    assert_eq!((r.status, r.code().as_str()), (504, "upstream_timeout"));
    assert!(t.elapsed() < Duration::from_millis(3500));
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_body_is_413_and_oversized_headers_431() {
    let env = Env::new().await;
    let auth = env.auth("u1");
    let big = format!(r#"{{"Subject":"{}"}}"#, "x".repeat(70 * 1024)); // limit 64KiB
    let r = send(
        "POST",
        &env.gw.url("/api/v1/support/cases"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        big.clone(),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (413, "payload_too_large"));
    let huge = "v".repeat(9 * 1024); // limit 8KiB
    let r = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[("authorization", &auth), ("x-padding", &huge)],
    )
    .await;
    assert_eq!(r.status, 431);
    assert!(env.mock.seen().is_empty());
    // Streamed (no Content-Length) to a streaming rule: cut at the limit.
    let r = send(
        "POST",
        &env.gw.url("/api/v1/slow/upload"),
        &[("authorization", &auth), ("transfer-encoding", "chunked")],
        big,
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (413, "payload_too_large"),
        "{}",
        r.text()
    );
    // The upstream never received the whole body (the stream was cut at the limit).
    assert!(env.mock.seen().iter().all(|s| s.body.len() <= 64 * 1024));
}

#[tokio::test]
async fn cors_preflight_answered_without_token_or_upstream() {
    let env = Env::new().await;
    let r = send(
        "OPTIONS",
        &env.gw.url("/api/v1/crm/people/u1"),
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "GET"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("GET")
    );
    assert!(
        r.header("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("600"));
    // Not listed: refused, no CORS headers.
    let r = send(
        "OPTIONS",
        &env.gw.url("/api/v1/crm/people/u1"),
        &[
            ("origin", "https://evil.example.com"),
            ("access-control-request-method", "GET"),
        ],
        "",
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    assert!(r.header("access-control-allow-origin").is_none());
    let r = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[
            ("origin", "https://evil.example.com"),
            ("authorization", &env.auth("u1")),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(env.mock.seen().is_empty());
    // Listed origin on a real request: CORS headers, also on errors.
    let r = get(
        &env.gw.url("/api/v1/crm/people/u2"),
        &[
            ("origin", "https://app.example.com"),
            ("authorization", &env.auth("u1")),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(
        r.header("access-control-expose-headers")
            .unwrap()
            .contains("x-request-id")
    );
}

#[tokio::test]
async fn https_upstream_with_rustls() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start_tls(&[&key]).await;
    let gw = Gateway::start(&mock, RULES).await;
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let r = get(
        &gw.url("/api/v1/crm/people/u1"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.seen()[0].headers.get("authorization").unwrap(),
        format!("Outseta {API_KEY}:{API_SECRET}").as_str()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn metrics_and_health_on_the_admin_port() {
    let env = Env::new().await;
    let _ = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[("authorization", &env.auth("u1"))],
    )
    .await;
    let _ = get(
        &env.gw.url("/api/v1/crm/people/u1"),
        &[("authorization", "Bearer x")],
    )
    .await;
    let h = get(&format!("http://{}/healthz", env.gw.admin), &[]).await;
    assert_eq!(h.status, 200);
    let m = get(&format!("http://{}/metrics", env.gw.admin), &[]).await;
    let text = m.text();
    for needle in [
        "gateway_requests_total{rule=\"read own person\",decision=\"allow\",status=\"200\"}",
        "gateway_auth_failures_total{reason=\"malformed\"}",
        "gateway_jwks_fetches_total{result=\"ok\"}",
        "gateway_request_duration_seconds_bucket",
        "gateway_upstream_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(API_SECRET));
    // The public port does not serve admin endpoints.
    let r = get(&env.gw.url("/metrics"), &[]).await;
    assert_eq!(r.status, 404);
}

/// A burst of new connections deeper than `TcpListener::bind`'s 128-entry accept queue:
/// every handshake completes while the gateway has not accepted any of them yet (the kernel
/// queues them), and once it serves, the last of them gets its answer. With a 128-deep queue
/// the kernel drops the overflowing handshakes, and their clients wait a second for a retry.
#[tokio::test]
async fn a_burst_of_new_connections_is_queued_not_dropped() {
    const BURST: usize = 300;
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let missing: Vec<String> = (somaxconn < BURST)
        .then(|| format!("net.core.somaxconn is {somaxconn}, below the burst of {BURST}"))
        .into_iter()
        .collect();
    if !support::tools::available("a_burst_of_new_connections_is_queued_not_dropped", &missing) {
        return;
    }
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let config =
        outseta_gateway::Config::from_toml(&support::gateway::config_text(&mock, RULES), "test")
            .expect("config");
    let bound = outseta_gateway::bind(config, support::gateway::options(&mock))
        .await
        .expect("bind");
    let addr = bound.local_addr();

    // Not served yet: only the kernel's accept queue holds these. A dropped handshake is
    // retried after 1 s, so 700 ms tells a queued connection from a dropped one.
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        connecting.spawn(tokio::time::timeout(
            Duration::from_millis(700),
            tokio::net::TcpStream::connect(addr),
        ));
    }
    let mut conns = Vec::new();
    while let Some(r) = connecting.join_next().await {
        if let Ok(Ok(Ok(stream))) = r {
            conns.push(stream);
        }
    }
    assert_eq!(
        conns.len(),
        BURST,
        "handshakes dropped by a full accept queue"
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));
    let mut last = conns.pop().expect("a connection");
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        last.write_all(b"GET /no-such-route HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = Vec::new();
        last.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    })
    .await
    .expect("answered in time")
    .expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let _ = stop.send(());
    drop(conns);
    let _ = serving.await;
}

#[tokio::test]
async fn a_malformed_streamed_body_is_400_not_502() {
    let env = Env::new().await;
    let auth = env.auth("u1");
    let head = |framing: &str| {
        format!(
            "POST /api/v1/slow/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n{framing}\r\n"
        )
    };
    let cases: [(&str, String, bool); 4] = [
        (
            "bad chunk size",
            format!(
                "{}5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n",
                head("Transfer-Encoding: chunked\r\n")
            ),
            false,
        ),
        (
            "chunk longer than its size",
            format!(
                "{}3\r\nhello\r\n0\r\n\r\n",
                head("Transfer-Encoding: chunked\r\n")
            ),
            false,
        ),
        (
            "chunked body cut short",
            format!(
                "{}10\r\nonly-a-part",
                head("Transfer-Encoding: chunked\r\n")
            ),
            true,
        ),
        (
            "content-length body cut short",
            format!("{}{{\"a\":", head("Content-Length: 100\r\n")),
            true,
        ),
    ];
    for (what, request, half_close) in cases {
        let (reply, _) = exchange(env.gw.addr, request.as_bytes(), half_close, None).await;
        assert!(
            reply.starts_with("HTTP/1.1 400"),
            "{what}: {}",
            reply.lines().next().unwrap_or("no answer")
        );
        assert!(
            reply.contains("\"code\":\"bad_request\""),
            "{what}: {reply}"
        );
    }
}

/// Sends `request` on a fresh connection (then closes the write half when `half_close`) and
/// reads until the gateway closed, 3 s passed, or (with `answers`) that many answers arrived.
/// Returns what was read and whether the gateway closed the connection.
async fn exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
    half_close: bool,
    answers: Option<usize>,
) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    if half_close {
        s.shutdown().await.expect("shutdown");
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if answers.is_some_and(|n| text.matches("HTTP/1.1 ").count() >= n && text.ends_with('}')) {
            return (text, false);
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (text, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (text, false),
        }
    }
}

#[tokio::test]
async fn early_refusals_of_an_unread_body_close_the_connection() {
    let env = Env::new().await;
    let auth = env.auth("u1");
    let req = |method: &str, path: &str, auth: &str, framing: &str, body: &str| {
        let auth = if auth.is_empty() {
            String::new()
        } else {
            format!("Authorization: {auth}\r\n")
        };
        format!(
            "{method} {path} HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\n{framing}\r\n{body}"
        )
    };
    // Answered before the body was read: the gateway says it closes, and does.
    for (what, request, status) in [
        (
            "413 on the declared length",
            req(
                "PUT",
                "/api/v1/slow/x",
                &auth,
                "Content-Length: 10000000\r\n",
                "",
            ),
            "413",
        ),
        (
            "401 without a token",
            req(
                "POST",
                "/api/v1/slow/x",
                "",
                "Content-Length: 500\r\n",
                "{\"a\":",
            ),
            "401",
        ),
        (
            "404 outside the API",
            req(
                "POST",
                "/elsewhere",
                &auth,
                "Transfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n",
            ),
            "404",
        ),
        (
            "403 no rule",
            req(
                "DELETE",
                "/api/v1/crm/people/u1",
                &auth,
                "Content-Length: 50\r\n",
                "",
            ),
            "403",
        ),
    ] {
        let (reply, closed) = exchange(env.gw.addr, request.as_bytes(), false, None).await;
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {reply}"
        );
        assert!(
            reply.to_ascii_lowercase().contains("connection: close"),
            "{what}: {reply}"
        );
        assert!(closed, "{what}: the gateway closes the connection");
    }
    // A body that was read keeps the connection: two requests, two answers, one connection.
    let first = req(
        "POST",
        "/api/v1/slow/x",
        &auth,
        "Content-Length: 7\r\n",
        "{\"a\":1}",
    );
    let second =
        format!("GET /api/v1/crm/people/u1 HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\n\r\n");
    let (reply, closed) = exchange(
        env.gw.addr,
        format!("{first}{second}").as_bytes(),
        false,
        Some(2),
    )
    .await;
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 2, "{reply}");
    assert!(
        !reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert!(!closed);
    // A refusal without a body keeps the connection too.
    let denied =
        format!("GET /api/v1/crm/people/u2 HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\n\r\n");
    let (reply, closed) = exchange(
        env.gw.addr,
        format!("{denied}{second}").as_bytes(),
        false,
        Some(2),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 1, "{reply}");
    assert!(!closed);
}
