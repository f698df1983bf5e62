//! The real binary: exit codes, `check`, `explain`, graceful shutdown, and logs that never
//! contain a secret or a token.

mod support;

use std::time::Duration;

use support::client::{bearer, get, send};
use support::gateway::{API_KEY, API_SECRET, AUDIENCE, ISSUER, RULES, config_text};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;
use support::process::{Proc, run, temp_file};
use support::tools;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn check_accepts_the_shipped_configs_and_rejects_bad_ones() {
    let (code, out) = run(
        &["check", "-c", "config/gateway.toml"],
        &[],
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok ("), "{out}");
    // The default path is config/gateway.toml; $OUTSETA_GATEWAY_CONFIG overrides it.
    let (code, _) = run(&["check"], &[], Some(REPO.as_ref()));
    assert_eq!(code, 0);
    let bad = temp_file(
        "bad.toml",
        "[outseta]\ndomain = \"x.outseta.com\"\nbogus = 1\n[[rule]]\nname = \"mint\"\nmethods = [\"POST\"]\npath = \"/api/v1/tokens\"\n",
    );
    let (code, out) = run(
        &["check"],
        &[("OUTSETA_GATEWAY_CONFIG", bad.to_str().unwrap())],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[outseta] unknown key `bogus`"), "{out}");
    assert!(out.contains("rule \"mint\""), "{out}");
    let (code, out) = run(&["check", "-c", "/nonexistent.toml"], &[], None);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _) = run(&["frobnicate"], &[], None);
    assert_eq!(code, 2);
    let (code, _) = run(
        &["explain", "-c", "config/gateway.toml", "GET"],
        &[],
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 2);
}

#[test]
fn explain_prints_the_decision_and_never_the_secret() {
    let env = [
        ("OUTSETA_API_KEY", API_KEY),
        ("OUTSETA_API_SECRET", API_SECRET),
    ];
    let claims = r#"{"sub":"P1","outseta:accountUid":"A1"}"#;
    let (code, out) = run(
        &[
            "explain",
            "-c",
            "config/gateway.toml",
            "--claims",
            claims,
            "GET",
            "/api/v1/billing/subscriptions?account.uid=A2&limit=5",
        ],
        &env,
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("rule:        #7 \"list own subscriptions\""),
        "{out}"
    );
    assert!(out.contains("decision:    allow"), "{out}");
    assert!(
        out.contains("/api/v1/billing/subscriptions?limit=5&Account.Uid=A1"),
        "{out}"
    );
    assert!(out.contains("credential:  api_key"), "{out}");
    assert!(!out.contains(API_SECRET) && !out.contains(API_KEY), "{out}");
    let (code, out) = run(
        &[
            "explain",
            "-c",
            "config/gateway.toml",
            "--claims",
            claims,
            "GET",
            "/api/v1/crm/people/P2",
        ],
        &env,
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("deny — 403 forbidden: rule \"read own person\": condition is false"),
        "{out}"
    );
    let (_, out) = run(
        &[
            "explain",
            "-c",
            "config/gateway.toml",
            "--claims",
            claims,
            "GET",
            "/api/v1/crm/people/P1/../P2",
        ],
        &env,
        Some(REPO.as_ref()),
    );
    assert!(out.contains("400 bad_request"), "{out}");
    let (_, out) = run(
        &[
            "explain",
            "-c",
            "config/gateway.toml",
            "--claims",
            claims,
            "GET",
            "/api/v1/crm/accounts",
        ],
        &env,
        Some(REPO.as_ref()),
    );
    assert!(out.contains("no rule matches"), "{out}");
}

#[test]
fn serve_refuses_to_start_without_the_api_key() {
    let (code, out) = run(
        &["serve", "-c", "config/gateway.toml", "--log-format", "json"],
        &[],
        Some(REPO.as_ref()),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("OUTSETA_API_KEY"), "{out}");
}

async fn start_binary(
    mock: &MockOutseta,
    extra_env: &[(&str, &str)],
) -> (Proc, std::net::SocketAddr, std::net::SocketAddr) {
    start_binary_with(mock, RULES, extra_env).await
}

async fn start_binary_with(
    mock: &MockOutseta,
    rules: &str,
    extra_env: &[(&str, &str)],
) -> (Proc, std::net::SocketAddr, std::net::SocketAddr) {
    let cfg = temp_file(
        &format!("gw-{}.toml", mock.addr.port()),
        &config_text(mock, rules),
    );
    let mut env = vec![
        ("OUTSETA_API_KEY", API_KEY),
        ("OUTSETA_API_SECRET", API_SECRET),
    ];
    env.extend_from_slice(extra_env);
    let p = Proc::spawn(
        &["serve", "-c", cfg.to_str().unwrap(), "--log-format", "json"],
        &env,
    );
    let (listen, admin) = p.wait_serving().await;
    for _ in 0..200 {
        if get(&format!("http://{admin}/readyz"), &[]).await.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (p, listen, admin)
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    mock.set_delay(Duration::from_millis(1200));
    let (mut p, listen, admin) = start_binary(&mock, &[]).await;
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let inflight: Vec<_> = (0..8)
        .map(|i| {
            let url = format!("http://{listen}/api/v1/slow/{i}");
            let auth = auth.clone();
            tokio::spawn(async move { get(&url, &[("authorization", &auth)]).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = get(&format!("http://{admin}/readyz"), &[]).await;
    assert_eq!(ready.status, 503, "readyz turns 503 while draining");
    assert_eq!(ready.json()["draining"], true);
    for h in inflight {
        assert_eq!(h.await.unwrap(), 200);
    }
    assert_eq!(
        p.wait_exit(Duration::from_secs(10)).await,
        0,
        "{}",
        p.output()
    );
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(listen).await.is_err());
}

#[tokio::test]
async fn logs_never_contain_the_secret_or_a_token() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start_tls(&[&key]).await;
    let ca = temp_file("ca.pem", &mock.tls.as_ref().unwrap().ca_pem);
    let (mut p, listen, admin) = start_binary(
        &mock,
        &[
            ("RUST_LOG", "trace"),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
    )
    .await;
    let good = key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1"));
    let mut expired_claims = keys::claims(ISSUER, AUDIENCE, "u1", "acct-1");
    expired_claims["exp"] = serde_json::json!(keys::now() - 100);
    let expired = key.token(&expired_claims);
    let base = format!("http://{listen}");
    let r = get(
        &format!("{base}/api/v1/crm/people/u1"),
        &[
            ("authorization", &bearer(&good)),
            ("cookie", "sid=cookie-secret-value"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(
        &format!("{base}/api/v1/profile?access_token={good}"),
        &[("authorization", &bearer(&good))],
    )
    .await;
    assert_eq!(
        r.status, 200,
        "the query (with a token in it) is forwarded, never logged"
    );
    let r = get(
        &format!("{base}/api/v1/profile"),
        &[("authorization", &bearer(&good))],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(
        &format!("{base}/api/v1/crm/people/u1"),
        &[("authorization", &bearer(&expired))],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = send(
        "POST",
        &format!("{base}/api/v1/tokens"),
        &[("content-type", "application/json")],
        r#"{"username":"a@b.c","password":"pw-secret-value"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let _ = get(&format!("http://{admin}/metrics"), &[]).await;
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(10)).await, 0);
    let logs = p.output();
    assert!(logs.lines().count() > 20, "expected trace logs:\n{logs}");
    assert!(logs.contains("\"target\":\"access\""), "{logs}");
    for secret in [
        API_SECRET,
        API_KEY,
        good.as_str(),
        expired.as_str(),
        "cookie-secret-value",
        "pw-secret-value",
    ] {
        assert!(!logs.contains(secret), "found {secret:?} in the logs");
    }
    // Not even the signature part of a token.
    let sig = good.rsplit('.').next().unwrap();
    assert!(!logs.contains(sig));
}

#[tokio::test]
async fn in_flight_gauge_returns_to_zero_when_clients_go_away() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    mock.set_delay(Duration::from_millis(800));
    let (mut p, listen, admin) = start_binary(&mock, &[]).await;
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let gauge = || async {
        let text = get(&format!("http://{admin}/metrics"), &[]).await.text();
        text.lines()
            .find(|l| l.starts_with("gateway_requests_in_flight "))
            .map(|l| {
                l.trim_start_matches("gateway_requests_in_flight ")
                    .to_string()
            })
    };
    // Four callers give up (their connections close) while the upstream is still answering.
    let gone: Vec<_> = (0..4)
        .map(|i| {
            let url = format!("http://{listen}/api/v1/slow/{i}");
            let auth = auth.clone();
            tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_millis(200),
                    get(&url, &[("authorization", &auth)]),
                )
                .await
                .is_err()
            })
        })
        .collect();
    for g in gone {
        assert!(g.await.unwrap(), "the caller gave up before the answer");
    }
    let mut last = None;
    for _ in 0..100 {
        last = gauge().await;
        if last.as_deref() == Some("0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last.as_deref(), Some("0"), "{}", p.output());
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(10)).await, 0);
}

#[tokio::test]
async fn on_one_cpu_it_runs_one_scheduler_thread_and_still_coalesces() {
    if !tools::has(
        "gateway pinned to one CPU",
        "taskset",
        "apt-get install -y util-linux",
    ) {
        return;
    }
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    mock.set_delay(Duration::from_millis(300));
    let cfg = temp_file(
        &format!("gw-one-cpu-{}.toml", mock.addr.port()),
        &config_text(
            &mock,
            r#"
[user_limit]
rate = "1000/s"
burst = 1000

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"
cache = "60s"
"#,
        ),
    );
    let mut p = Proc::spawn_on_one_cpu(
        &["serve", "-c", cfg.to_str().unwrap(), "--log-format", "json"],
        &[
            ("OUTSETA_API_KEY", API_KEY),
            ("OUTSETA_API_SECRET", API_SECRET),
        ],
    );
    let (listen, _admin) = p.wait_serving().await;
    let serving: serde_json::Value = p
        .output()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "outseta-gateway serving")
        .expect("serving line");
    assert_eq!(serving["runtime"], "current_thread", "{serving}");
    assert_eq!(serving["workers"], 1, "{serving}");

    // 64 concurrent first reads of one key: one upstream call, every caller answered.
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let url = format!("http://{listen}/api/v1/crm/people/u1");
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (url, auth) = (url.clone(), auth.clone());
            tokio::spawn(async move { get(&url, &[("authorization", &auth)]).await.status })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200, "{}", p.output());
    }
    assert_eq!(mock.hits("/api/v1/crm/people/u1"), 1);
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 200);
    assert_eq!(
        mock.hits("/api/v1/crm/people/u1"),
        1,
        "the second read is a hit"
    );

    p.signal("TERM");
    assert_eq!(
        p.wait_exit(Duration::from_secs(10)).await,
        0,
        "{}",
        p.output()
    );
}

/// The server keeps to 4 KiB pages (`alloc::small_pages`): no 2 MiB region is zeroed inside
/// a request when a burst needs fresh heap. `MIMALLOC_ALLOW_THP` hands the choice back.
#[tokio::test]
async fn serve_runs_without_transparent_huge_pages() {
    fn thp_enabled(pid: u32) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:").map(|v| v.trim().to_owned()))
    }
    let missing: Vec<String> = thp_enabled(std::process::id())
        .is_none()
        .then(|| "/proc/<pid>/status has no THP_enabled line (Linux ≥ 5.0)".to_owned())
        .into_iter()
        .collect();
    if !tools::available("serve_runs_without_transparent_huge_pages", &missing) {
        return;
    }
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let cases: [(&[(&str, &str)], &str); 2] = [(&[], "0"), (&[("MIMALLOC_ALLOW_THP", "1")], "1")];
    for (env, enabled) in cases {
        let (mut p, _listen, _admin) = start_binary(&mock, env).await;
        assert_eq!(
            thp_enabled(p.child.id()).as_deref(),
            Some(enabled),
            "{env:?}"
        );
        p.signal("TERM");
        assert_eq!(
            p.wait_exit(Duration::from_secs(10)).await,
            0,
            "{}",
            p.output()
        );
    }
}

/// The access line carries what each layer learned, on answers and on refusals alike: the
/// rule (route), the caller (authn), the cache's verdict, Outseta's status and time (forward),
/// the decision and the problem code.
#[tokio::test]
async fn access_lines_carry_what_each_layer_learned() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let rules = r#"
[cors]
allowed_origins = ["https://app.example.com"]

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"
cache = "60s"
"#;
    let (mut p, listen, _admin) = start_binary_with(&mock, rules, &[("RUST_LOG", "info")]).await;
    let base = format!("http://{listen}");
    let own = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let url = format!("{base}/api/v1/crm/people/u1");
    for want in [200, 200] {
        assert_eq!(get(&url, &[("authorization", &own)]).await.status, want);
    }
    let other = get(
        &format!("{base}/api/v1/crm/people/u2"),
        &[("authorization", &own)],
    )
    .await;
    assert_eq!(other.status, 403);
    let mut expired = keys::claims(ISSUER, AUDIENCE, "u1", "acct-1");
    expired["exp"] = serde_json::json!(keys::now() - 100);
    let r = get(&url, &[("authorization", &bearer(&key.token(&expired)))]).await;
    assert_eq!(r.status, 401);
    let r = send(
        "OPTIONS",
        &url,
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "GET"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(10)).await, 0);
    let logs = p.output();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect();
    assert_eq!(lines.len(), 5, "{logs}");
    let (miss, hit, denied, unauth, preflight) =
        (&lines[0], &lines[1], &lines[2], &lines[3], &lines[4]);
    for l in [miss, hit, denied, unauth] {
        assert_eq!(l["rule"], "read own person", "{l}");
    }
    assert_eq!(miss["sub"], "u1");
    assert_eq!(miss["decision"], "allow");
    assert_eq!(miss["cache"], "miss");
    assert_eq!(miss["upstream_status"], 200);
    assert!(miss["upstream_ms"].as_f64().unwrap() > 0.0, "{miss}");
    assert_eq!(hit["cache"], "hit");
    assert_eq!(
        hit["upstream_status"], 0,
        "a hit makes no upstream call: {hit}"
    );
    assert_eq!(denied["sub"], "u1");
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["code"], "forbidden");
    assert_eq!(denied["status"], 403);
    assert_eq!(unauth["sub"], "", "no caller on a refused token: {unauth}");
    assert_eq!(unauth["code"], "invalid_token");
    assert_eq!(preflight["decision"], "preflight");
    assert_eq!(preflight["rule"], "");
}
