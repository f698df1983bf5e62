//! Shaping benchmark: the real [`Budget`] under a sustained overload from 10 users with
//! unequal demand, in real time, and the cost of a Redis reservation.
//!
//! Prints:
//! - achieved permit rate / budget (target ≥ 0.95) over the steady window;
//! - Jain's fairness index over the users' granted share, each normalised by its max-min
//!   fair share of the budget given its demand (target ≥ 0.9; 1.0 is perfectly fair);
//! - p50/p99 of the queueing delay of granted requests;
//! - the added cost per request of a Redis reservation (fast-path `acquire` with the Redis
//!   store minus with the memory store, against a real local `redis-server`), and the raw
//!   EVALSHA round trip.
//!
//! Run: `cargo bench --bench shaping` (about 25 s). Without `redis-server` the Redis figures
//! are skipped. Numbers are from one machine: compare runs on the same machine only.

#[path = "../tests/support/redis.rs"]
#[allow(dead_code)]
mod redis_support;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outseta_gateway::budget::Budget;
use outseta_gateway::budget::gcra::Gcra;
use outseta_gateway::budget::redis::SCRIPT;
use outseta_gateway::config::types::parse_rate;
use outseta_gateway::config::{Store, UpstreamLimit};
use outseta_gateway::limits::key::UserKey;
use tokio::time::Instant;

/// Budget: 20/s, burst 10 (tolerance 200 ms after the jitter guard), max_wait 2 s.
const RATE: f64 = 20.0;
const BURST: u32 = 10;
const USERS: usize = 10;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(12);

fn limit(rate: &str, burst: u32, max_wait: Duration, store: Store, url: &str) -> UpstreamLimit {
    UpstreamLimit {
        rate: parse_rate(rate).expect("rate"),
        burst: NonZeroU32::new(burst).expect("burst"),
        max_wait,
        store,
        redis_url: url.into(),
        redis_url_from_env: false,
        redis_key: "bench:budget".into(),
        redis_fallback_share: 0.5,
    }
}

/// Demand of user `i` in requests/s: 5 % to 50 % of the budget each, 2.75 × the budget in all.
fn demand(i: usize) -> f64 {
    RATE * 0.05 * (i + 1) as f64
}

/// Max-min fair allocation of `capacity` among `demands` (water filling).
fn max_min(demands: &[f64], capacity: f64) -> Vec<f64> {
    let mut alloc = vec![0.0; demands.len()];
    let mut left: Vec<usize> = (0..demands.len()).collect();
    let mut cap = capacity;
    while !left.is_empty() {
        let share = cap / left.len() as f64;
        let (small, big): (Vec<usize>, Vec<usize>) =
            left.iter().partition(|&&i| demands[i] <= share);
        if small.is_empty() {
            for &i in &big {
                alloc[i] = share;
            }
            break;
        }
        for &i in &small {
            alloc[i] = demands[i];
            cap -= demands[i];
        }
        left = big;
    }
    alloc
}

fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    sum * sum / (x.len() as f64 * sq)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[derive(Default)]
struct Record {
    /// (user, granted at, waited)
    granted: Vec<(usize, Duration, Duration)>,
    busy: usize,
}

async fn overload() {
    let budget = Budget::new(&limit(
        "20/s",
        BURST,
        Duration::from_secs(2),
        Store::Memory,
        "",
    ))
    .expect("budget");
    let record = Arc::new(Mutex::new(Record::default()));
    let t0 = Instant::now();
    let end = t0 + WARMUP + MEASURE;
    let mut users = Vec::new();
    for i in 0..USERS {
        let (budget, record) = (budget.clone(), record.clone());
        users.push(tokio::spawn(async move {
            let key = UserKey::Sub(format!("user-{i}").into());
            let every = Duration::from_secs_f64(1.0 / demand(i));
            // open loop: arrivals on a fixed schedule, whatever the answers
            let mut next = t0 + every.mul_f64(i as f64 / USERS as f64);
            let mut inflight = Vec::new();
            while next < end {
                tokio::time::sleep_until(next).await;
                let (budget, record, key) = (budget.clone(), record.clone(), key.clone());
                inflight.push(tokio::spawn(async move {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    match budget.acquire(&key, deadline).await {
                        Ok(g) => {
                            record
                                .lock()
                                .expect("record")
                                .granted
                                .push((i, t0.elapsed(), g.waited))
                        }
                        Err(_) => record.lock().expect("record").busy += 1,
                    }
                }));
                next += every;
            }
            for t in inflight {
                let _ = t.await;
            }
        }));
    }
    for u in users {
        let _ = u.await;
    }

    let r = record.lock().expect("record");
    let window = (WARMUP, WARMUP + MEASURE);
    let in_window: Vec<&(usize, Duration, Duration)> = r
        .granted
        .iter()
        .filter(|(_, at, _)| *at >= window.0 && *at < window.1)
        .collect();
    let secs = MEASURE.as_secs_f64();
    let achieved = in_window.len() as f64 / secs;
    let mut per_user = [0.0; USERS];
    for (u, _, _) in &in_window {
        per_user[*u] += 1.0 / secs;
    }
    let demands: Vec<f64> = (0..USERS).map(demand).collect();
    let fair = max_min(&demands, RATE);
    let normalised: Vec<f64> = per_user.iter().zip(&fair).map(|(g, f)| g / f).collect();
    let mut waits: Vec<Duration> = in_window.iter().map(|(_, _, w)| *w).collect();
    waits.sort();

    println!("== shaping: budget {RATE}/s burst {BURST}, max_wait 2 s, 10 users, offered 2.75x");
    println!(
        "achieved upstream rate / budget: {:.3} ({achieved:.2}/s over {secs:.0} s)",
        achieved / RATE
    );
    println!(
        "Jain's fairness index (granted / max-min fair share): {:.3}",
        jain(&normalised)
    );
    print!("per user granted/s (fair share): ");
    for (g, f) in per_user.iter().zip(&fair) {
        print!("{g:.2} ({f:.2})  ");
    }
    println!();
    println!(
        "queueing delay: p50 {:.1} ms, p99 {:.1} ms ({} granted, {} refused upstream_busy)",
        percentile(&waits, 0.50).as_secs_f64() * 1e3,
        percentile(&waits, 0.99).as_secs_f64() * 1e3,
        r.granted.len(),
        r.busy
    );
    for (name, u) in [("lightest", 0), ("heaviest", USERS - 1)] {
        let mut w: Vec<Duration> = in_window
            .iter()
            .filter(|(i, _, _)| *i == u)
            .map(|(_, _, w)| *w)
            .collect();
        w.sort();
        println!(
            "  {name} user ({:.0}/s offered): p50 {:.1} ms, p99 {:.1} ms",
            demand(u),
            percentile(&w, 0.50).as_secs_f64() * 1e3,
            percentile(&w, 0.99).as_secs_f64() * 1e3
        );
    }
}

/// Mean cost of `n` sequential fast-path acquires (the budget never waits).
async fn fast_path_cost(budget: &Budget, n: u32) -> Duration {
    let key = UserKey::Sub("bench".into());
    let far = Instant::now() + Duration::from_secs(3600);
    for _ in 0..200 {
        let _ = budget.acquire(&key, far).await;
    }
    let t = std::time::Instant::now();
    for _ in 0..n {
        let _ = budget.acquire(&key, far).await;
    }
    t.elapsed() / n
}

async fn redis_cost() {
    let Some(redis) = redis_support::Redis::start_or_skip() else {
        println!("== redis reservation: skipped (no redis-server)");
        return;
    };
    let n = 5_000;
    let huge = Duration::from_secs(10);
    let memory = Budget::new(&limit("1000000/s", 1_000_000, huge, Store::Memory, ""))
        .expect("memory budget");
    let shared = Budget::new(&limit(
        "1000000/s",
        1_000_000,
        huge,
        Store::Redis,
        &redis.url(),
    ))
    .expect("redis budget");
    let mem = fast_path_cost(&memory, n).await;
    let red = fast_path_cost(&shared, n).await;
    assert_eq!(shared.status().mode, "shared", "redis reachable");

    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let g = Gcra::new(
        Duration::from_micros(1),
        NonZeroU32::new(1_000_000).expect("burst"),
        Duration::ZERO,
    );
    let script = redis::Script::new(SCRIPT);
    let t = std::time::Instant::now();
    for _ in 0..n {
        let _: (i64, i64) = script
            .key("bench:raw")
            .arg(g.interval_us)
            .arg(g.tolerance_us)
            .arg(0u64)
            .arg(0u64)
            .invoke_async(&mut conn)
            .await
            .expect("script");
    }
    let raw = t.elapsed() / n;
    println!("== redis reservation ({n} sequential calls, local redis-server)");
    println!(
        "acquire, memory store: {:.2} µs; redis store: {:.1} µs; added per request: {:.1} µs",
        mem.as_secs_f64() * 1e6,
        red.as_secs_f64() * 1e6,
        (red.saturating_sub(mem)).as_secs_f64() * 1e6
    );
    println!("raw EVALSHA round trip: {:.1} µs", raw.as_secs_f64() * 1e6);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        overload().await;
        redis_cost().await;
    });
}
