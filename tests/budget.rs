//! The shared upstream budget and the per-user limit, end to end: a gateway in-process in
//! front of the Outseta simulator (its per-API-key 429 limit on) or the mock, tokens from the
//! mock's JWKS.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use outseta_gateway::Config;
use support::client::{Reply, bearer, get, send};
use support::gateway::{AUDIENCE, Gateway, ISSUER};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;
use support::sim::{self, Sim};

/// 4/s, burst 4, max_wait 10 s (the defaults), a per-user limit out of the way.
const PEOPLE: &str = r#"
[upstream_limit]
rate = "4/s"
burst = 4
max_wait = "10s"

[user_limit]
rate = "6000/min"
burst = 1000

[[rule]]
name = "people"
methods = ["GET"]
path = "/api/v1/crm/people"
query_allow = ["limit", "offset"]

[[rule]]
name = "plans"
methods = ["GET"]
path = "/api/v1/billing/plans"
auth = "optional"
credential = "none"
"#;

struct Setup {
    key: SigningKey,
    _mock: MockOutseta,
    sim: Sim,
    gw: Gateway,
}

async fn setup(rules: &str) -> Setup {
    support::trace_init();
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let sim = Sim::start(4).await;
    let text = sim::config(&sim.base, &mock.jwks_url(), rules);
    let gw = Gateway::start_with(&mock, Config::from_toml(&text, "test").expect("config")).await;
    Setup {
        key,
        _mock: mock,
        sim,
        gw,
    }
}

fn token(key: &SigningKey, sub: &str) -> String {
    bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, sub, "acct-1")))
}

/// GETs `path` as `auth`; returns the reply and when it completed (since `t0`).
async fn timed_get(url: String, auth: String, t0: Instant) -> (Reply, Duration) {
    let r = get(&url, &[("authorization", &auth)]).await;
    (r, t0.elapsed())
}

fn assert_within_budget(stats: &serde_json::Value) {
    assert_eq!(stats["rate_limited"], 0, "the simulator sent 429s: {stats}");
    let arrivals = sim::arrivals(stats);
    let worst = sim::max_in_window(&arrivals, 1_000_000);
    // rate + burst = 8 (the GCRA itself allows 1 + (1 s + 500 ms) / 250 ms = 7)
    assert!(worst <= 8, "{worst} arrivals within one second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_misses_from_ten_users_stay_within_the_budget() {
    let s = setup(PEOPLE).await;
    let tokens: Vec<String> = (0..10)
        .map(|u| token(&s.key, &format!("user-{u}")))
        .collect();
    let t0 = Instant::now();
    let replies = join_all((0..100).map(|i| {
        timed_get(
            s.gw.url(&format!("/api/v1/crm/people?limit=5&offset={i}")),
            tokens[i % 10].clone(),
            t0,
        )
    }))
    .await;
    let mut ok = 0;
    for (r, at) in &replies {
        match r.status {
            200 => {
                ok += 1;
                // 10 s of queueing at most, plus the call itself
                assert!(*at < Duration::from_secs(12), "200 after {at:?}");
            }
            503 => {
                assert_eq!(r.code(), "upstream_busy", "{}", r.text());
                let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!(retry >= 1);
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    // shaping serves what the budget allows rather than refusing: 3 at once, then 4/s for 10 s
    assert!((35..=45).contains(&ok), "{ok} served");
    let stats = s.sim.stats().await;
    assert_within_budget(&stats);
    assert_eq!(sim::arrivals(&stats).len(), ok);
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_user_is_served_between_a_heavy_users_requests() {
    let rules = PEOPLE.replace("max_wait = \"10s\"", "max_wait = \"4s\"");
    let s = setup(&rules).await;
    let (a, b) = (token(&s.key, "heavy"), token(&s.key, "light"));
    let t0 = Instant::now();
    let heavy = tokio::spawn({
        let urls: Vec<String> = (0..40)
            .map(|i| s.gw.url(&format!("/api/v1/crm/people?limit=1&offset={i}")))
            .collect();
        async move { join_all(urls.into_iter().map(|u| timed_get(u, a.clone(), t0))).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let light = join_all((0..2).map(|i| {
        timed_get(
            s.gw.url(&format!("/api/v1/crm/people?limit=2&offset={i}")),
            b.clone(),
            t0,
        )
    }))
    .await;
    let heavy = heavy.await.unwrap();
    for (r, _) in &light {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let light_done = light.iter().map(|(_, at)| *at).max().unwrap();
    let mut heavy_done: Vec<Duration> = heavy
        .iter()
        .filter(|(r, _)| r.status == 200)
        .map(|(_, at)| *at)
        .collect();
    heavy_done.sort();
    assert!(heavy_done.len() >= 10, "{} heavy served", heavy_done.len());
    assert!(
        light_done < heavy_done[9],
        "light done at {light_done:?}, heavy's 10th at {:?}",
        heavy_done[9]
    );
    assert_within_budget(&s.sim.stats().await);
    s.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_the_api_key_do_not_pay() {
    let rules = PEOPLE.replace("rate = \"4/s\"", "rate = \"1/min\"");
    let s = setup(&rules).await;
    let t0 = Instant::now();
    let plans = s.gw.url("/api/v1/billing/plans");
    let replies = join_all((0..20).map(|_| get(&plans, &[]))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // while the API-key budget (1/min, burst 4: the 4th after the jitter guard) is spent
    let auth = token(&s.key, "u");
    let keyed = join_all((0..5).map(|i| {
        timed_get(
            s.gw.url(&format!("/api/v1/crm/people?offset={i}")),
            auth.clone(),
            t0,
        )
    }))
    .await;
    let keyed: Vec<Reply> = keyed.into_iter().map(|(r, _)| r).collect();
    let busy = keyed.iter().filter(|r| r.status == 503).count();
    assert_eq!(
        busy,
        1,
        "{:?}",
        keyed.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    s.gw.shutdown().await;
}

/// Rules for the mock upstream (429 scripting).
const MOCK_RULES: &str = r#"
[upstream_limit]
rate = "4/s"
burst = 4
max_wait = "10s"

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"

[[rule]]
name = "open support case"
methods = ["POST"]
path = "/api/v1/support/cases"
body_allow = ["Subject"]
"#;

async fn mock_setup(rules: &str) -> (SigningKey, MockOutseta, Gateway) {
    support::trace_init();
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let text = sim::config(&mock.base_url(), &mock.jwks_url(), rules);
    let gw = Gateway::start_with(&mock, Config::from_toml(&text, "test").expect("config")).await;
    (key, mock, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_429_pauses_the_budget_and_the_get_is_retried() {
    let (key, mock, gw) = mock_setup(MOCK_RULES).await;
    mock.push_reply(429, &[("retry-after", "2")], r#"{"Message":"slow down"}"#);
    let t0 = Instant::now();
    let first = tokio::spawn({
        let url = gw.url("/api/v1/crm/people/alice");
        let auth = token(&key, "alice");
        async move { get(&url, &[("authorization", &auth)]).await }
    });
    // another user's call while the budget is paused waits for the pause too
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = get(
        &gw.url("/api/v1/crm/people/bob"),
        &[("authorization", &token(&key, "bob"))],
    )
    .await;
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["Uid"], "alice");
    assert_eq!(other.status, 200);
    assert!(t0.elapsed() >= Duration::from_secs(2));
    let seen = mock.seen();
    assert_eq!(seen.len(), 3, "429, retry, bob");
    let (hit, rest) = (seen[0].at, &seen[1..]);
    for s in rest {
        let after = s.at.duration_since(hit);
        assert!(
            after >= Duration::from_millis(1_950),
            "{} after {after:?}",
            s.path_and_query
        );
    }
    let metrics = get(&format!("http://{}/metrics", gw.admin), &[])
        .await
        .text();
    assert!(metrics.contains("gateway_upstream_429_total"), "{metrics}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_gets_the_upstream_429_and_a_hopeless_get_gets_busy() {
    let (key, mock, gw) = mock_setup(MOCK_RULES).await;
    let auth = token(&key, "alice");
    mock.push_reply(429, &[], r#"{"Message":"slow down"}"#);
    let r = send(
        "POST",
        &gw.url("/api/v1/support/cases"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        r#"{"Subject":"hi"}"#,
    )
    .await;
    assert_eq!(r.status, 429, "Outseta's own answer, passed through");
    assert_eq!(r.json()["Message"], "slow down");
    assert_eq!(mock.seen().len(), 1, "not retried");
    // A pause longer than max_wait: the GET is not retried but answered upstream_busy.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    mock.push_reply(429, &[("retry-after", "30")], "{}");
    let t0 = Instant::now();
    let r = get(
        &gw.url("/api/v1/crm/people/alice"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "upstream_busy");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 29);
    assert!(t0.elapsed() < Duration::from_secs(2), "refused at once");
    assert_eq!(mock.seen().len(), 2);
    gw.shutdown().await;
}

const USER_LIMIT: &str = r#"
[user_limit]
rate = "60/min"
burst = 3

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"

[[rule]]
name = "plans"
methods = ["GET"]
path = "/api/v1/billing/plans"
auth = "optional"
credential = "none"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_limit_answers_429_with_ratelimit_headers() {
    let (key, mock, gw) = mock_setup(USER_LIMIT).await;
    let alice = token(&key, "alice");
    let url = gw.url("/api/v1/crm/people/alice");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = get(&url, &[("authorization", &alice)]).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("ratelimit-policy").as_deref(),
            Some("\"user\";q=60;w=60")
        );
        remaining.push(r.header("ratelimit").unwrap());
    }
    assert_eq!(
        remaining,
        ["\"user\";r=2;t=1", "\"user\";r=1;t=1", "\"user\";r=0;t=1"]
    );
    let r = get(&url, &[("authorization", &alice)]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "rate_limited");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert_eq!(r.header("ratelimit").as_deref(), Some("\"user\";r=0;t=1"));
    assert_eq!(
        r.header("ratelimit-policy").as_deref(),
        Some("\"user\";q=60;w=60")
    );
    assert_eq!(mock.seen().len(), 3, "the limited request went nowhere");
    // errors from below carry the fields too (a policy 403 for someone else's person)
    let bob = token(&key, "bob");
    let r = get(&url, &[("authorization", &bob)]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("ratelimit").as_deref(), Some("\"user\";r=2;t=1"));
    // anonymous callers count by IP and get no fields
    let plans = gw.url("/api/v1/billing/plans");
    let anon: Vec<Reply> = join_all((0..4).map(|_| get(&plans, &[]))).await;
    assert_eq!(anon.iter().filter(|r| r.status == 429).count(), 1);
    assert!(anon.iter().all(|r| r.header("ratelimit").is_none()));
    // a second later alice has one more
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(get(&url, &[("authorization", &alice)]).await.status, 200);
    gw.shutdown().await;
}

/// Anonymous GETs of the plans, one after the other, each with the `X-Forwarded-For` given.
async fn statuses(gw: &Gateway, xff: &[&str]) -> Vec<u16> {
    let url = gw.url("/api/v1/billing/plans");
    let mut out = Vec::new();
    for x in xff {
        out.push(get(&url, &[("x-forwarded-for", x)]).await.status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_behind_a_trusted_proxy_count_by_the_address_it_names() {
    support::trace_init();
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let text = sim::config(&mock.base_url(), &mock.jwks_url(), USER_LIMIT);
    let trusting = text.replace(
        "upstream_timeout = \"5s\"",
        "upstream_timeout = \"5s\"\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    assert_ne!(text, trusting);

    // Trusted (the SPA's nginx on 127.0.0.1 in the sidecar layout): each client its own bucket.
    let gw =
        Gateway::start_with(&mock, Config::from_toml(&trusting, "test").expect("config")).await;
    let one = ["203.0.113.1"; 4];
    assert_eq!(statuses(&gw, &one).await, [200, 200, 200, 429]);
    assert_eq!(
        statuses(&gw, &["203.0.113.2"]).await,
        [200],
        "another client"
    );
    // a client cannot borrow a bucket by writing an address itself: the hop the proxy
    // appended (the rightmost untrusted one) is the client
    assert_eq!(
        statuses(
            &gw,
            &["203.0.113.2, 203.0.113.1", "203.0.113.1, 198.51.100.7"]
        )
        .await,
        [429, 200]
    );
    gw.shutdown().await;

    // Not trusted (the default): the header is ignored, everyone shares the peer's bucket.
    let gw = Gateway::start_with(&mock, Config::from_toml(&text, "test").expect("config")).await;
    let many = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"];
    assert_eq!(statuses(&gw, &many).await, [200, 200, 200, 429]);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_details_the_budget_and_metrics_name_it() {
    let (key, _mock, gw) = mock_setup(MOCK_RULES).await;
    let r = get(&format!("http://{}/readyz", gw.admin), &[]).await;
    assert_eq!(r.status, 200);
    let budget = &r.json()["budget"];
    assert_eq!(budget["store"], "memory");
    assert_eq!(budget["mode"], "local");
    assert_eq!(budget["queued"], 0);
    let auth = token(&key, "alice");
    for _ in 0..5 {
        get(
            &gw.url("/api/v1/crm/people/alice"),
            &[("authorization", &auth)],
        )
        .await;
    }
    let metrics = get(&format!("http://{}/metrics", gw.admin), &[])
        .await
        .text();
    for name in [
        "gateway_budget_permits_total",
        "gateway_budget_wait_seconds",
        "gateway_budget_queue_depth",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    gw.shutdown().await;
}
