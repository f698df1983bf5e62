//! The Redis budget against a real `redis-server` started by each test on a free port:
//! the script itself, budgets sharing one Redis, and three real gateway processes sharing
//! one Redis and one simulator through an outage.
//!
//! Without `redis-server` these tests print `SKIP: redis-server not found` and pass, unless
//! `REQUIRE_ALL=1`.

mod support;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use outseta_gateway::budget::gcra::{Gcra, JITTER_GUARD};
use outseta_gateway::budget::redis::SCRIPT;
use outseta_gateway::budget::{Budget, BusyReason};
use outseta_gateway::config::types::parse_rate;
use outseta_gateway::config::{Store, UpstreamLimit};
use outseta_gateway::limits::key::UserKey;
use support::client::{Reply, bearer, get};
use support::gateway::{API_KEY, API_SECRET, AUDIENCE, ISSUER};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;
use support::process::{Proc, temp_file};
use support::redis::Redis;
use support::sim::{self, Sim};
use tokio::time::Instant;

async fn call(
    conn: &mut redis::aio::MultiplexedConnection,
    g: &Gcra,
    key: &str,
    horizon_us: u64,
    pause_us: u64,
) -> (i64, i64) {
    redis::Script::new(SCRIPT)
        .key(key)
        .arg(g.interval_us)
        .arg(g.tolerance_us)
        .arg(horizon_us)
        .arg(pause_us)
        .invoke_async(conn)
        .await
        .expect("script")
}

#[tokio::test]
async fn the_script_reserves_paces_and_pauses() {
    let Some(redis) = Redis::start_or_skip() else {
        return;
    };
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let g = Gcra::new(
        Duration::from_millis(100),
        NonZeroU32::new(3).unwrap(),
        Duration::ZERO,
    );
    let k = "t:budget";
    // the burst
    for _ in 0..3 {
        assert_eq!(call(&mut conn, &g, k, 0, 0).await, (1, 0));
    }
    // the next slot is ~100 ms away: reported, not reserved, with a zero horizon
    let (reserved, wait) = call(&mut conn, &g, k, 0, 0).await;
    assert_eq!(reserved, 0);
    assert!((50_000..=100_000).contains(&wait), "{wait}");
    // reserved with a horizon; the one after is an interval later
    let (r1, w1) = call(&mut conn, &g, k, 1_000_000, 0).await;
    let (r2, w2) = call(&mut conn, &g, k, 1_000_000, 0).await;
    assert_eq!((r1, r2), (1, 1));
    assert!((w2 - w1 - 100_000).abs() < 20_000, "{w1} {w2}");
    // the TAT is stored as a plain integer (no exponent form), with an expiry
    let tat: String = redis::cmd("GET")
        .arg(k)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(tat.parse::<u64>().is_ok(), "{tat}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(k)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 1_000 && ttl < 2_000, "{ttl}");
    // a pause pushes everything back
    assert_eq!(call(&mut conn, &g, k, 0, 1_000_000).await, (0, 1_000_000));
    let (r, w) = call(&mut conn, &g, k, 10_000_000, 0).await;
    assert_eq!(r, 1);
    assert!((950_000..=1_050_000).contains(&w), "{w}");
    // NOSCRIPT is handled: flush the script cache, the call still works
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (r, _) = call(&mut conn, &g, "t:other", 0, 0).await;
    assert_eq!(r, 1);
}

fn config(redis: &Redis, rate: &str, burst: u32, max_wait_ms: u64, key: &str) -> UpstreamLimit {
    UpstreamLimit {
        rate: parse_rate(rate).unwrap(),
        burst: NonZeroU32::new(burst).unwrap(),
        max_wait: Duration::from_millis(max_wait_ms),
        store: Store::Redis,
        redis_url: redis.url(),
        redis_url_from_env: false,
        redis_key: key.into(),
        redis_fallback_share: 0.5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_budgets_share_one_rate() {
    let Some(redis) = Redis::start_or_skip() else {
        return;
    };
    let cfg = config(&redis, "10/s", 2, 2_000, "t:shared");
    let (a, b) = (Budget::new(&cfg).unwrap(), Budget::new(&cfg).unwrap());
    let t0 = Instant::now();
    let granted = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, budget) in [a.clone(), b.clone()].into_iter().enumerate() {
        for n in 0..30 {
            let (budget, granted) = (budget.clone(), granted.clone());
            let user = UserKey::Sub(format!("u{}", n % 3 + i * 3).into());
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                if budget.acquire(&user, deadline).await.is_ok() {
                    granted.lock().unwrap().push(t0.elapsed());
                }
            }));
        }
    }
    join_all(tasks).await;
    let mut times = granted.lock().unwrap().clone();
    times.sort();
    let g = Gcra::new(
        Duration::from_millis(100),
        NonZeroU32::new(2).unwrap(),
        JITTER_GUARD,
    );
    // both replicas together: at most what one GCRA allows in the 2 s they had
    let bound = g.max_in_window(Duration::from_millis(2_000)) as usize;
    assert!(times.len() <= bound, "{} > {bound}", times.len());
    assert!(
        times.len() >= bound - 3,
        "{} granted, bound {bound}",
        times.len()
    );
    assert_eq!(a.status().mode, "shared");
    assert_eq!(b.status().mode, "shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_seen_by_one_replica_pauses_them_all() {
    let Some(redis) = Redis::start_or_skip() else {
        return;
    };
    let cfg = config(&redis, "10/s", 5, 5_000, "t:pause");
    let (a, b) = (Budget::new(&cfg).unwrap(), Budget::new(&cfg).unwrap());
    let user = UserKey::Sub("u".into());
    let far = Instant::now() + Duration::from_secs(30);
    assert!(b.acquire(&user, far).await.is_ok());
    a.pause(Duration::from_millis(1_500)).await;
    let t0 = Instant::now();
    let g = b.acquire(&user, far).await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(1_400),
        "{:?} (waited {:?})",
        t0.elapsed(),
        g.waited
    );
    assert_eq!(
        b.status().paused_for,
        None,
        "b learnt it from Redis, not locally"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_falls_back_while_redis_is_down_and_returns() {
    let Some(mut redis) = Redis::start_or_skip() else {
        return;
    };
    let cfg = config(&redis, "20/s", 2, 2_000, "t:fallback");
    let budget = Budget::new(&cfg).unwrap();
    let user = UserKey::Sub("u".into());
    let far = || Instant::now() + Duration::from_secs(10);
    assert!(budget.acquire(&user, far()).await.is_ok());
    assert_eq!(budget.status().mode, "shared");
    redis.kill();
    // still answering, now locally at 20/s * 0.5, starting from an empty bucket
    let t0 = Instant::now();
    for _ in 0..4 {
        budget.acquire(&user, far()).await.unwrap();
    }
    assert_eq!(budget.status().mode, "fallback");
    assert_eq!(budget.status().store, "redis");
    // 4 permits at 10/s from an empty bucket: at least 400 ms
    assert!(
        t0.elapsed() >= Duration::from_millis(390),
        "{:?}",
        t0.elapsed()
    );
    redis.restart();
    let back = Instant::now();
    while budget.status().mode != "shared" {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "never back to shared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(budget.acquire(&user, far()).await.is_ok());
    // busy still means busy: a wait past max_wait is refused in shared mode
    let refused = join_all((0..80).map(|_| budget.acquire(&user, far()))).await;
    assert!(
        refused
            .iter()
            .any(|r| matches!(r, Err(e) if e.reason == BusyReason::MaxWait || e.reason == BusyReason::UserQueueFull))
    );
}

const RULES: &str = r#"
[[rule]]
name = "people"
methods = ["GET"]
path = "/api/v1/crm/people"
query_allow = ["limit", "offset"]
"#;

struct Replica {
    proc_: Proc,
    listen: std::net::SocketAddr,
    admin: std::net::SocketAddr,
}

async fn readyz(r: &Replica) -> (u16, serde_json::Value) {
    let rep = get(&format!("http://{}/readyz", r.admin), &[]).await;
    (rep.status, rep.json())
}

/// Fires `n` requests spread over the replicas and users; every answer must be 200 or 503
/// `upstream_busy`. Returns how many were served.
async fn burst(replicas: &[Replica], tokens: &[String], n: usize, base: usize) -> usize {
    let replies: Vec<Reply> = join_all((0..n).map(|i| {
        let r = &replicas[i % replicas.len()];
        let url = format!(
            "http://{}/api/v1/crm/people?limit=1&offset={}",
            r.listen,
            base + i
        );
        let auth = tokens[i % tokens.len()].clone();
        async move { get(&url, &[("authorization", &auth)]).await }
    }))
    .await;
    let mut ok = 0;
    for r in &replies {
        match r.status {
            200 => ok += 1,
            503 => assert_eq!(r.code(), "upstream_busy", "{}", r.text()),
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_one_budget_and_survive_a_redis_outage() {
    let Some(mut redis) = Redis::start_or_skip() else {
        return;
    };
    support::trace_init();
    let key = SigningKey::generate("k1");
    let jwks = MockOutseta::start(&[&key]).await;
    let sim = Sim::start(4).await;
    let limits = format!(
        r#"
[upstream_limit]
rate = "4/s"
burst = 4
max_wait = "3s"
store = "redis"
redis_url = "{}"
redis_key = "it:budget"
redis_fallback_share = 0.25

[user_limit]
rate = "6000/min"
burst = 1000
{RULES}"#,
        redis.url()
    );
    let cfg = temp_file(
        "budget-redis.toml",
        &sim::config(&sim.base, &jwks.jwks_url(), &limits),
    );
    // The third replica's file names a dead Redis; the URL it really uses comes from
    // OUTSETA_REDIS_URL_FILE (as the Helm chart mounts it from a Secret).
    let cfg_env = temp_file(
        "budget-redis-env.toml",
        &sim::config(
            &sim.base,
            &jwks.jwks_url(),
            &limits.replace(&redis.url(), "redis://127.0.0.1:1"),
        ),
    );
    let url_file = temp_file("redis-url", &format!("{}\n", redis.url()));
    let mut replicas = Vec::new();
    for i in 0..3 {
        let mut env = vec![
            ("OUTSETA_API_KEY", API_KEY),
            ("OUTSETA_API_SECRET", API_SECRET),
        ];
        let file = if i == 2 {
            env.push(("OUTSETA_REDIS_URL_FILE", url_file.to_str().unwrap()));
            &cfg_env
        } else {
            &cfg
        };
        let p = Proc::spawn(
            &[
                "serve",
                "-c",
                file.to_str().unwrap(),
                "--log-format",
                "json",
            ],
            &env,
        );
        let (listen, admin) = p.wait_serving().await;
        replicas.push(Replica {
            proc_: p,
            listen,
            admin,
        });
    }
    for r in &replicas {
        let start = std::time::Instant::now();
        while readyz(r).await.0 != 200 {
            assert!(start.elapsed() < Duration::from_secs(10), "not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let tokens: Vec<String> = (0..10)
        .map(|u| bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, &format!("u{u}"), "a"))))
        .collect();

    // 1. shared: together within 4/s
    let ok = burst(&replicas, &tokens, 60, 0).await;
    let stats = sim.stats().await;
    assert_eq!(stats["rate_limited"], 0, "{stats}");
    let arrivals = sim::arrivals(&stats);
    assert_eq!(arrivals.len(), ok);
    // the GCRA allows 1 + (1 s + 500 ms) / 250 ms = 7 in any second (rate + burst = 8)
    assert!(
        sim::max_in_window(&arrivals, 1_000_000) <= 7,
        "{arrivals:?}"
    );
    // 3 s of max_wait at 4/s, plus the burst: one budget, not three
    assert!((8..=17).contains(&ok), "{ok} served by three replicas");
    for r in &replicas {
        assert_eq!(readyz(r).await.1["budget"]["mode"], "shared");
    }

    // 2. Redis down: every replica keeps answering, each at 4/s * 0.25
    redis.kill();
    sim.reset().await;
    let t0 = std::time::Instant::now();
    let ok = burst(&replicas, &tokens, 60, 1000).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let stats = sim.stats().await;
    assert_eq!(stats["rate_limited"], 0, "{stats}");
    let arrivals = sim::arrivals(&stats);
    assert_eq!(arrivals.len(), ok);
    // three replicas at 1/s each, after a 2 s hold, from empty buckets
    assert!(ok >= 3, "{ok}: every replica serves");
    assert!(ok as f64 <= 3.0 * elapsed + 3.0, "{ok} in {elapsed:.1} s");
    assert!(
        sim::max_in_window(&arrivals, 1_000_000) <= 6,
        "{arrivals:?}"
    );
    for r in &replicas {
        let (status, body) = readyz(r).await;
        assert_eq!(status, 200, "stays ready");
        assert_eq!(body["budget"]["mode"], "fallback", "{body}");
        let metrics = get(&format!("http://{}/metrics", r.admin), &[])
            .await
            .text();
        assert!(
            metrics.contains("gateway_budget_mode{mode=\"fallback\"} 1"),
            "{metrics}"
        );
    }
    for r in &replicas {
        let out = r.proc_.output();
        assert_eq!(
            out.matches("redis unreachable").count(),
            1,
            "logged once:\n{out}"
        );
    }

    // 3. Redis back: shared again (each replica holds 1 s + burst * interval first), within
    // the budget
    redis.restart();
    for r in &replicas {
        let start = std::time::Instant::now();
        while readyz(r).await.1["budget"]["mode"] != "shared" {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "never back to shared"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.reset().await;
    let ok = burst(&replicas, &tokens, 40, 2000).await;
    let stats = sim.stats().await;
    assert_eq!(stats["rate_limited"], 0, "{stats}");
    assert!(sim::max_in_window(&sim::arrivals(&stats), 1_000_000) <= 7);
    assert!((8..=17).contains(&ok), "{ok}");
    for r in &replicas {
        assert!(r.proc_.output().contains("back to the shared budget"));
    }
}
