//! The response cache end to end: hits, what is not stored, policy on hits,
//! per-user keys, invalidation, expiry, stale serving, purge, coalescing and the byte bound.

mod support;

use std::time::{Duration, Instant};

use outseta_gateway::Config;
use support::client::{bearer, get, send};
use support::gateway::{AUDIENCE, Gateway, ISSUER};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;

const RULES: &str = r#"
[[rule]]
name = "person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"
cache = "60s"

[[rule]]
name = "update person"
methods = ["PUT", "DELETE"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"
invalidates = ["/api/v1/crm/accounts/{uid}"]

[[rule]]
name = "accounts"
methods = ["GET", "PUT"]
path = "/api/v1/crm/accounts/{*rest}"
cache = "default"

[[rule]]
name = "account collection"
methods = ["GET"]
path = "/api/v1/crm/accounts"
cache = "default"

[[rule]]
name = "own invoice"
methods = ["GET"]
path = "/api/v1/billing/invoices/{uid}"
response_when = "response.Subscription.Account.Uid == claims['outseta:accountUid']"
cache = "60s"

[[rule]]
name = "profile"
methods = ["GET"]
path = "/api/v1/profile"
credential = "user"
cache = "60s"

[[rule]]
name = "slow"
methods = ["GET"]
path = "/api/v1/slow/{*rest}"
cache = "60s"

[[rule]]
name = "short"
methods = ["GET"]
path = "/api/v1/short/{*rest}"
cache = "1s"

[[rule]]
name = "plans"
methods = ["GET"]
path = "/api/v1/billing/plans"
auth = "none"
credential = "none"
cache = "60s"

[[rule]]
name = "uncached"
methods = ["GET"]
path = "/api/v1/marketing/{*rest}"
"#;

struct Env {
    mock: MockOutseta,
    gw: Gateway,
    key: SigningKey,
}

/// `[cache]` settings for one test.
struct CacheCfg {
    max_size: &'static str,
    swr: &'static str,
    sie: &'static str,
}

const PLAIN: CacheCfg = CacheCfg {
    max_size: "1MiB",
    swr: "0s",
    sie: "0s",
};

impl Env {
    async fn new(c: CacheCfg) -> Self {
        support::trace_init();
        let key = SigningKey::generate("k1");
        let mock = MockOutseta::start(&[&key]).await;
        let text = format!(
            r#"
[outseta]
upstream = "{base}"
jwks_url = "{jwks}"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"

[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
request_timeout = "4s"
upstream_timeout = "1s"

[cache]
max_size = "{max}"
ttl = "30s"
stale_while_revalidate = "{swr}"
stale_if_error = "{sie}"

# These tests are about the cache: the budget and the per-user limit must not shape them.
[upstream_limit]
rate = "10000/s"
burst = 10000

[user_limit]
rate = "100000/min"
burst = 10000

{RULES}
"#,
            base = mock.base_url(),
            jwks = mock.jwks_url(),
            max = c.max_size,
            swr = c.swr,
            sie = c.sie,
        );
        let config = Config::from_toml(&text, "cache test").expect("valid config");
        let gw = Gateway::start_with(&mock, config).await;
        Self { mock, gw, key }
    }

    fn token(&self, sub: &str, account: &str) -> String {
        self.key
            .token(&keys::claims(ISSUER, AUDIENCE, sub, account))
    }

    fn auth(&self, sub: &str) -> String {
        bearer(&self.token(sub, "acct-1"))
    }

    async fn get(&self, path: &str, sub: &str) -> support::client::Reply {
        get(&self.gw.url(path), &[("authorization", &self.auth(sub))]).await
    }
}

fn cache_status(r: &support::client::Reply) -> String {
    r.header("cache-status").unwrap_or_default()
}

#[tokio::test]
async fn second_get_is_a_hit_without_an_upstream_call() {
    let env = Env::new(PLAIN).await;
    let r1 = env.get("/api/v1/crm/people/u1", "u1").await;
    assert_eq!(r1.status, 200, "{}", r1.text());
    assert_eq!(cache_status(&r1), "outseta-gateway; fwd=miss; stored");
    let r2 = env.get("/api/v1/crm/people/u1", "u1").await;
    assert_eq!(r2.status, 200);
    let cs = cache_status(&r2);
    assert!(
        cs == "outseta-gateway; hit; ttl=60" || cs == "outseta-gateway; hit; ttl=59",
        "{cs}"
    );
    assert_eq!(r2.body, r1.body);
    assert_eq!(
        r2.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(r2.header("age").is_some());
    assert_eq!(env.mock.hits("/api/v1/crm/people/u1"), 1);
    // Query order does not matter: same key.
    env.get("/api/v1/crm/accounts/a1?b=2&a=1", "u1").await;
    let r = env.get("/api/v1/crm/accounts/a1?a=1&b=2", "u1").await;
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
    assert_eq!(env.mock.hits("/api/v1/crm/accounts/a1"), 1);
    // Rules without `cache` pass through untouched.
    let r = env.get("/api/v1/marketing/x", "u1").await;
    assert_eq!(r.status, 200);
    assert!(r.header("cache-status").is_none());
    env.get("/api/v1/marketing/x", "u1").await;
    assert_eq!(env.mock.hits("/api/v1/marketing/x"), 2);
}

/// outsetapy's `?limit=10?offset=1` is forwarded as the pairs the rule judged, joined with
/// `&`, and shares its cache entry with the same query written with `&`.
#[tokio::test]
async fn a_question_mark_separated_query_is_forwarded_and_cached_in_its_ampersand_form() {
    let env = Env::new(PLAIN).await;
    let r1 = env
        .get("/api/v1/crm/accounts/a2?limit=10?offset=1", "u1")
        .await;
    assert_eq!(r1.status, 200, "{}", r1.text());
    assert_eq!(cache_status(&r1), "outseta-gateway; fwd=miss; stored");
    let seen: Vec<String> = env
        .mock
        .seen()
        .into_iter()
        .map(|s| s.path_and_query)
        .collect();
    assert_eq!(seen, ["/api/v1/crm/accounts/a2?limit=10&offset=1"]);
    let r2 = env
        .get("/api/v1/crm/accounts/a2?offset=1&limit=10", "u1")
        .await;
    assert!(cache_status(&r2).contains("hit"), "{}", cache_status(&r2));
    assert_eq!(env.mock.hits("/api/v1/crm/accounts/a2"), 1);
}

#[tokio::test]
async fn non_200_no_store_private_and_oversized_answers_are_not_stored() {
    let env = Env::new(PLAIN).await;
    let plans = env.gw.url("/api/v1/billing/plans");

    env.mock.set_status(404, r#"{"Message":"nope"}"#);
    for _ in 0..2 {
        let r = get(&plans, &[]).await;
        assert_eq!(r.status, 404);
        assert_eq!(cache_status(&r), "outseta-gateway; fwd=bypass");
    }
    assert_eq!(env.mock.hits("/api/v1/billing/plans"), 2);
    env.mock.clear_status();

    for cc in ["no-store", "private, max-age=60"] {
        env.mock.clear_seen();
        env.mock.clear_response_headers();
        env.mock.set_response_header("cache-control", cc);
        for _ in 0..2 {
            let r = get(&plans, &[]).await;
            assert_eq!(r.status, 200);
            assert_eq!(cache_status(&r), "outseta-gateway; fwd=bypass", "{cc}");
        }
        assert_eq!(env.mock.hits("/api/v1/billing/plans"), 2, "{cc}");
    }
    env.mock.clear_response_headers();

    // 1 MiB / 16 = 64 KiB per entry: 100 kB does not fit, and streams through intact.
    env.mock.clear_seen();
    let big = env.gw.url("/api/v1/billing/plans?pad=100000");
    for _ in 0..2 {
        let r = get(&big, &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(cache_status(&r), "outseta-gateway; fwd=bypass");
        assert_eq!(r.json()["pad"].as_str().unwrap().len(), 100_000);
    }
    assert_eq!(env.mock.hits("/api/v1/billing/plans"), 2);

    // Just under the limit is stored.
    let fits = env.gw.url("/api/v1/billing/plans?pad=50000");
    assert_eq!(
        cache_status(&get(&fits, &[]).await),
        "outseta-gateway; fwd=miss; stored"
    );
    assert!(cache_status(&get(&fits, &[]).await).contains("hit"));
}

#[tokio::test]
async fn a_denied_user_never_gets_a_cached_body_and_response_when_runs_on_hits() {
    let env = Env::new(PLAIN).await;
    let r = env.get("/api/v1/crm/people/u1", "u1").await;
    assert_eq!(r.status, 200);
    // u2 is denied by `when`, before the cache.
    let r = env.get("/api/v1/crm/people/u1", "u2").await;
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("u1@example.com"));
    // A response of a cacheable rule, which the cache did not answer.
    assert_eq!(cache_status(&r), "outseta-gateway; fwd=bypass");

    // The invoice belongs to acct-1: its owner's fetch is stored...
    let owner = bearer(&env.token("u1", "acct-1"));
    let url = env.gw.url("/api/v1/billing/invoices/i1");
    let r = get(&url, &[("authorization", &owner)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(cache_status(&r), "outseta-gateway; fwd=miss; stored");
    // ...and another account's user hits the entry but `response_when` refuses it.
    let other = bearer(&env.token("u9", "acct-2"));
    let r = get(&url, &[("authorization", &other)]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("invoice-body-marker"));
    assert_eq!(cache_status(&r), "outseta-gateway; fwd=bypass");
    // The owner still hits.
    let r = get(&url, &[("authorization", &owner)]).await;
    assert!(cache_status(&r).contains("hit"));
    assert_eq!(env.mock.hits("/api/v1/billing/invoices/i1"), 1);
}

#[tokio::test]
async fn user_credential_entries_never_cross_users() {
    let env = Env::new(PLAIN).await;
    let t1 = env.token("u1", "acct-1");
    let t2 = env.token("u2", "acct-1");
    let url = env.gw.url("/api/v1/profile");
    let tail = |t: &str| t[t.len() - 8..].to_string();

    let a = get(&url, &[("authorization", &bearer(&t1))]).await;
    assert_eq!(cache_status(&a), "outseta-gateway; fwd=miss; stored");
    assert_eq!(a.json()["auth_tail"], tail(&t1));
    let b = get(&url, &[("authorization", &bearer(&t2))]).await;
    assert_eq!(cache_status(&b), "outseta-gateway; fwd=miss; stored");
    assert_eq!(b.json()["auth_tail"], tail(&t2));
    for (t, expect) in [(&t1, tail(&t1)), (&t2, tail(&t2))] {
        let r = get(&url, &[("authorization", &bearer(t))]).await;
        assert!(cache_status(&r).contains("hit"));
        assert_eq!(r.json()["auth_tail"], expect);
    }
    assert_eq!(env.mock.hits("/api/v1/profile"), 2);
}

#[tokio::test]
async fn a_write_invalidates_its_path_its_collection_and_its_templates() {
    let env = Env::new(PLAIN).await;
    let item = "/api/v1/crm/accounts/a1";
    let collection = "/api/v1/crm/accounts";
    env.get(item, "u1").await;
    env.get(&format!("{item}?fields=*"), "u1").await;
    env.get(collection, "u1").await;
    assert!(cache_status(&env.get(item, "u1").await).contains("hit"));

    let w = send(
        "PUT",
        &env.gw.url(item),
        &[
            ("authorization", &env.auth("u1")),
            ("content-type", "application/json"),
        ],
        r#"{"Name":"Initrode"}"#,
    )
    .await;
    assert_eq!(w.status, 200);
    assert_eq!(cache_status(&w), "outseta-gateway; fwd=bypass");

    let r = env.get(item, "u1").await;
    assert_eq!(cache_status(&r), "outseta-gateway; fwd=miss; stored");
    assert_eq!(r.json()["data"]["Name"], "Initrode", "fresh data after PUT");
    let r = env.get(&format!("{item}?fields=*"), "u1").await;
    assert_eq!(cache_status(&r), "outseta-gateway; fwd=miss; stored");
    let r = env.get(collection, "u1").await;
    assert_eq!(
        cache_status(&r),
        "outseta-gateway; fwd=miss; stored",
        "the parent collection is dropped too"
    );

    // `invalidates` templates: a person update drops the account entry of the same uid.
    env.get("/api/v1/crm/accounts/u1", "u1").await;
    env.get("/api/v1/crm/people/u1", "u1").await;
    let w = send(
        "PUT",
        &env.gw.url("/api/v1/crm/people/u1"),
        &[("authorization", &env.auth("u1"))],
        r#"{"FirstName":"A"}"#,
    )
    .await;
    assert_eq!(w.status, 200);
    assert!(w.header("cache-status").is_none(), "not a cacheable rule");
    for p in ["/api/v1/crm/accounts/u1", "/api/v1/crm/people/u1"] {
        assert_eq!(
            cache_status(&env.get(p, "u1").await),
            "outseta-gateway; fwd=miss; stored",
            "{p}"
        );
    }

    // A failed write invalidates nothing.
    env.mock.set_status(500, "{}");
    let w = send(
        "PUT",
        &env.gw.url(item),
        &[("authorization", &env.auth("u1"))],
        "{}",
    )
    .await;
    assert_eq!(w.status, 500);
    env.mock.clear_status();
    assert!(cache_status(&env.get(item, "u1").await).contains("hit"));
}

#[tokio::test]
async fn ttl_expiry_refetches() {
    let env = Env::new(PLAIN).await;
    let p = "/api/v1/short/x";
    let r = env.get(p, "u1").await;
    assert_eq!(r.json()["n"], 1);
    assert!(cache_status(&env.get(p, "u1").await).contains("hit"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = env.get(p, "u1").await;
    assert_eq!(cache_status(&r), "outseta-gateway; fwd=miss; stored");
    assert_eq!(r.json()["n"], 2);
    assert_eq!(env.mock.hits(p), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_once_then_fresh() {
    let env = Env::new(CacheCfg {
        swr: "30s",
        ..PLAIN
    })
    .await;
    let p = "/api/v1/short/swr";
    assert_eq!(env.get(p, "u1").await.json()["n"], 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = env.get(p, "u1").await;
    assert_eq!(
        cache_status(&r),
        "outseta-gateway; fwd=stale; detail=revalidating"
    );
    assert_eq!(r.json()["n"], 1, "the stale body, at once");
    // One background refresh.
    let start = Instant::now();
    while env.mock.hits(p) < 2 && start.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let it store.
    let mut r = env.get(p, "u1").await;
    for _ in 0..100 {
        if cache_status(&r).contains("hit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        r = env.get(p, "u1").await;
    }
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
    assert_eq!(r.json()["n"], 2, "fresh after the refresh");
    assert_eq!(env.mock.hits(p), 2);
}

#[tokio::test]
async fn a_failing_refresh_is_not_retried_for_every_stale_answer() {
    let env = Env::new(CacheCfg {
        swr: "30s",
        ..PLAIN
    })
    .await;
    let p = "/api/v1/short/swr-down";
    env.get(p, "u1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.mock.set_status(503, "{}");
    for _ in 0..5 {
        let r = env.get(p, "u1").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            cache_status(&r),
            "outseta-gateway; fwd=stale; detail=revalidating"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // One refresh failed; the next waits out the backoff (1s).
    assert_eq!(env.mock.hits(p), 2);
}

#[tokio::test]
async fn stale_if_error_on_5xx_and_timeout() {
    let env = Env::new(CacheCfg {
        sie: "60s",
        ..PLAIN
    })
    .await;
    let p = "/api/v1/short/sie";
    let fresh = env.get(p, "u1").await;
    assert_eq!(fresh.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.mock.set_status(500, r#"{"Message":"boom"}"#);
    let r = env.get(p, "u1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        cache_status(&r),
        "outseta-gateway; fwd=stale; detail=upstream-error"
    );
    assert_eq!(r.body, fresh.body);
    env.mock.clear_status();

    // Timeout: the mock delays paths with `/slow` longer than upstream_timeout (1s).
    let p = "/api/v1/short/slow";
    let fresh = env.get(p, "u1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.mock.set_delay(Duration::from_millis(1500));
    let r = env.get(p, "u1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        cache_status(&r),
        "outseta-gateway; fwd=stale; detail=upstream-timeout"
    );
    assert_eq!(r.body, fresh.body);

    // Without a stale entry the error is the caller's.
    let r = env.get("/api/v1/short/slow-cold", "u1").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.code(), "upstream_timeout");
    assert_eq!(cache_status(&r), "outseta-gateway; fwd=bypass");
}

#[tokio::test]
async fn purge_by_prefix_on_the_admin_listener() {
    let env = Env::new(PLAIN).await;
    for p in [
        "/api/v1/crm/people/u1",
        "/api/v1/crm/accounts/a1",
        "/api/v1/crm/accounts/a2?fields=*",
    ] {
        env.get(p, "u1").await;
    }
    let admin = |q: &str| format!("http://{}/cache/purge{q}", env.gw.admin);
    let r = send("POST", &admin("?prefix=/api/v1/crm/accounts"), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["purged"], 2);
    assert_eq!(r.json()["prefix"], "/api/v1/crm/accounts");
    assert_eq!(
        cache_status(&env.get("/api/v1/crm/accounts/a1", "u1").await),
        "outseta-gateway; fwd=miss; stored"
    );
    assert!(cache_status(&env.get("/api/v1/crm/people/u1", "u1").await).contains("hit"));

    assert_eq!(send("GET", &admin("?prefix=/"), &[], "").await.status, 405);
    assert_eq!(send("POST", &admin(""), &[], "").await.status, 400);
    assert_eq!(
        send("POST", &admin("?prefix=api"), &[], "").await.status,
        400
    );
    let r = send("POST", &admin("?prefix=%2F"), &[], "").await;
    assert_eq!(r.json()["purged"], 2);
    assert_eq!(
        cache_status(&env.get("/api/v1/crm/people/u1", "u1").await),
        "outseta-gateway; fwd=miss; stored"
    );
    // The purge endpoint is not on the public listener.
    let r = send("POST", &env.gw.url("/cache/purge?prefix=/"), &[], "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_stampede_on_a_cold_key_makes_one_upstream_call() {
    let env = Env::new(PLAIN).await;
    env.mock.set_delay(Duration::from_millis(300));
    let url = env.gw.url("/api/v1/slow/stampede");
    let auth = env.auth("u1");
    let start = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let url = url.clone();
            let auth = auth.clone();
            tokio::spawn(async move { get(&url, &[("authorization", &auth)]).await })
        })
        .collect();
    let mut statuses = std::collections::HashMap::<String, usize>::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["path"], "/api/v1/slow/stampede");
        *statuses.entry(cache_status(&r)).or_default() += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(env.mock.hits("/api/v1/slow/stampede"), 1, "{statuses:?}");
    assert_eq!(
        statuses["outseta-gateway; fwd=miss; stored"], 1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .get("outseta-gateway; fwd=miss; collapsed")
            .copied()
            .unwrap_or(0)
            > 100,
        "{statuses:?}"
    );
    // Followers are woken with the leader, not polled (generous bound: debug build, 2 cores).
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn followers_still_get_an_answer_when_the_leaders_client_goes_away() {
    let env = Env::new(PLAIN).await;
    env.mock.set_delay(Duration::from_millis(500));
    let url = env.gw.url("/api/v1/slow/leader-gone");
    let auth = env.auth("u1");
    let leader = {
        let (url, auth) = (url.clone(), auth.clone());
        tokio::spawn(async move { get(&url, &[("authorization", &auth)]).await })
    };
    // The leader is upstream; followers join.
    let start = Instant::now();
    while env.mock.hits("/api/v1/slow/leader-gone") == 0 && start.elapsed() < Duration::from_secs(2)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let followers: Vec<_> = (0..20)
        .map(|_| {
            let (url, auth) = (url.clone(), auth.clone());
            tokio::spawn(async move { get(&url, &[("authorization", &auth)]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    leader.abort(); // the leader's connection is dropped mid-flight
    for f in followers {
        let r = f.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            cache_status(&r).contains("fwd=miss"),
            "{}",
            cache_status(&r)
        );
    }
    // One call if the leader's work survived its client, two if a follower took over.
    let hits = env.mock.hits("/api/v1/slow/leader-gone");
    assert!((1..=2).contains(&hits), "{hits}");
    assert_eq!(env.gw.cache.locks().in_flight(), 0);
}

#[tokio::test]
async fn filling_far_past_max_size_stays_within_it() {
    let env = Env::new(CacheCfg {
        max_size: "64KiB",
        ..PLAIN
    })
    .await;
    // ~1.6 KiB entries (1 KiB pad + JSON + headers + bookkeeping), 400 of them: ~10x max_size.
    for i in 0..400 {
        let r = env
            .get(&format!("/api/v1/crm/accounts/fill-{i}?pad=1024"), "u1")
            .await;
        assert_eq!(r.status, 200);
    }
    let store = env.gw.cache.store();
    store.run_pending_tasks().await;
    let size = store.weighted_size();
    assert!(size <= 64 * 1024, "weighted size {size} > max_size");
    assert!(size > 0);
    assert_eq!(store.bytes_held(), size, "the bytes gauge follows moka");
    assert_eq!(
        store.indexed_keys() as u64,
        store.entry_count(),
        "the path index follows"
    );
}

#[tokio::test]
async fn cache_metrics_are_exported() {
    let env = Env::new(PLAIN).await;
    env.get("/api/v1/crm/people/u1", "u1").await;
    env.get("/api/v1/crm/people/u1", "u1").await;
    let m = get(&format!("http://{}/metrics", env.gw.admin), &[]).await;
    let text = m.text();
    for name in [
        "gateway_cache_hits_total",
        "gateway_cache_misses_total",
        "gateway_cache_stored_total",
        "gateway_cache_bytes",
        "gateway_cache_entries",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

/// The peer benchmark's S4 shape, in-process: 500 requests for one cold key on pre-opened
/// connections, origin delay 200 ms. Reports latencies; run it on a quiet machine with
/// `cargo test --release --test cache -- --ignored --nocapture s4`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing report, run on a quiet machine in release"]
async fn s4_stampede_latency_report() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let env = Env::new(PLAIN).await;
    env.mock.set_delay(Duration::from_millis(200));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1000)
        .build_http();
    let auth = env.auth("u1");
    let fire = |path: String| {
        let client = client.clone();
        let uri: http::Uri = env.gw.url(&path).parse().unwrap();
        let auth = auth.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let req = http::Request::get(uri)
                .header("authorization", auth)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let rsp = client.request(req).await.unwrap();
            let status = rsp.status().as_u16();
            let _ = rsp.into_body().collect().await;
            (status, start.elapsed())
        })
    };
    // Open 500 connections (a warm key), so the stampede measures the gateway, not connects.
    let warm: Vec<_> = (0..500)
        .map(|_| fire("/api/v1/crm/people/u1".into()))
        .collect();
    for w in warm {
        assert_eq!(w.await.unwrap().0, 200);
    }
    let tasks: Vec<_> = (0..500).map(|_| fire("/api/v1/slow/s4".into())).collect();
    let mut lat = Vec::new();
    for t in tasks {
        let (status, d) = t.await.unwrap();
        assert_eq!(status, 200);
        lat.push(d);
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    eprintln!(
        "S4 in-process: origin hits {}, p50 {:?}, p99 {:?}, max {:?}",
        env.mock.hits("/api/v1/slow/s4"),
        p(0.5),
        p(0.99),
        lat[lat.len() - 1]
    );
    assert_eq!(env.mock.hits("/api/v1/slow/s4"), 1);
}
