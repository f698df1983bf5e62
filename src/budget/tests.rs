//! The memory budget end to end on tokio's paused clock: exact timings, no real sleeping.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::types::parse_rate;

fn config(rate: &str, burst: u32, max_wait_ms: u64) -> UpstreamLimit {
    UpstreamLimit {
        rate: parse_rate(rate).unwrap(),
        burst: NonZeroU32::new(burst).unwrap(),
        max_wait: Duration::from_millis(max_wait_ms),
        store: Store::Memory,
        redis_url: "redis://127.0.0.1:1".into(),
        redis_url_from_env: false,
        redis_key: "k".into(),
        redis_fallback_share: 0.5,
    }
}

fn user(s: &str) -> UserKey {
    UserKey::Sub(s.into())
}

type Log = Arc<Mutex<Vec<(String, u128)>>>;

/// Spawns one acquire for `who`; on a grant, logs `(who#i, ms since t0)`.
fn spawn(
    budget: &Budget,
    log: &Log,
    who: &str,
    i: usize,
    t0: Instant,
) -> tokio::task::JoinHandle<Result<Granted, Busy>> {
    let (b, log, who) = (budget.clone(), log.clone(), who.to_string());
    tokio::spawn(async move {
        let r = b.acquire(&user(&who), t0 + Duration::from_secs(60)).await;
        if r.is_ok() {
            log.lock()
                .unwrap()
                .push((format!("{who}#{i}"), t0.elapsed().as_millis()));
        }
        r
    })
}

#[tokio::test(start_paused = true)]
async fn burst_less_guard_then_one_per_interval() {
    let b = Budget::new(&config("4/s", 4, 10_000)).unwrap();
    let log = Log::default();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..8).map(|i| spawn(&b, &log, "a", i, t0)).collect();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let times: Vec<u128> = log.lock().unwrap().iter().map(|(_, t)| *t).collect();
    // three at once (the jitter guard takes the fourth of the burst), then every 250 ms
    assert_eq!(times, [0, 0, 0, 250, 500, 750, 1000, 1250]);
    assert_eq!(b.status().queued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_late_light_user_is_not_starved_by_a_heavy_one() {
    let b = Budget::new(&config("4/s", 4, 30_000)).unwrap();
    let log = Log::default();
    let t0 = Instant::now();
    let mut handles: Vec<_> = (0..40).map(|i| spawn(&b, &log, "a", i, t0)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    handles.extend((0..2).map(|i| spawn(&b, &log, "b", i, t0)));
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let order: Vec<String> = log.lock().unwrap().iter().map(|(w, _)| w.clone()).collect();
    let at = |name: &str| order.iter().position(|w| w == name).unwrap();
    assert!(at("b#1") < at("a#9"), "{order:?}");
    // after b joined, permits alternate until b is done
    let first_b = at("b#0");
    assert!(
        order[first_b + 1].starts_with('a') && order[first_b + 2] == "b#1",
        "{order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn permits_rotate_between_many_users() {
    let b = Budget::new(&config("10/s", 1, 30_000)).unwrap();
    let log = Log::default();
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for u in ["a", "b", "c"] {
        for i in 0..5 {
            handles.push(spawn(&b, &log, u, i, t0));
        }
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let users: String = log
        .lock()
        .unwrap()
        .iter()
        .map(|(w, _)| w.chars().next().unwrap())
        .collect();
    // the first request took the free permit; then strict rotation
    assert_eq!(&users[1..], "abcabcabcabcbc", "{users}");
}

#[tokio::test(start_paused = true)]
async fn a_wait_beyond_max_wait_is_refused_at_once() {
    // 2/s, burst 1, max_wait 1.1 s: the fast permit, then two queued (500 ms, 1 s), then busy
    let b = Budget::new(&config("2/s", 1, 1_100)).unwrap();
    let t0 = Instant::now();
    let far = t0 + Duration::from_secs(60);
    assert!(b.acquire(&user("a"), far).await.is_ok());
    let (b1, b2) = (b.clone(), b.clone());
    let q1 = tokio::spawn(async move { b1.acquire(&user("a"), far).await });
    let q2 = tokio::spawn(async move { b2.acquire(&user("a"), far).await });
    tokio::task::yield_now().await;
    let refused = b.acquire(&user("a"), far).await.unwrap_err();
    assert_eq!(refused.reason, BusyReason::MaxWait);
    assert_eq!(t0.elapsed(), Duration::ZERO, "refused without waiting");
    assert!(refused.retry_after >= Duration::from_secs(1));
    assert!(q1.await.unwrap().is_ok());
    assert!(q2.await.unwrap().is_ok());
    assert!(t0.elapsed() <= Duration::from_millis(1_000));
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_bounds_the_wait() {
    let b = Budget::new(&config("1/s", 1, 10_000)).unwrap();
    let now = Instant::now();
    assert!(
        b.acquire(&user("a"), now + Duration::from_secs(5))
            .await
            .is_ok()
    );
    let e = b
        .acquire(&user("a"), now + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(e.reason, BusyReason::Deadline);
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_every_permit() {
    let b = Budget::new(&config("10/s", 5, 10_000)).unwrap();
    let t0 = Instant::now();
    b.pause(Duration::from_secs(2)).await;
    assert_eq!(b.status().paused_for, Some(Duration::from_secs(2)));
    let g = b
        .acquire(&user("a"), t0 + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(g.waited, Duration::from_secs(2));
    // a pause longer than max_wait refuses at once
    b.pause(Duration::from_secs(20)).await;
    let e = b
        .acquire(&user("a"), t0 + Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(e.reason, BusyReason::MaxWait);
    assert!(e.retry_after >= Duration::from_secs(19));
}

#[tokio::test(start_paused = true)]
async fn waiters_that_give_up_leave_the_queue() {
    let b = Budget::new(&config("1/s", 1, 10_000)).unwrap();
    let far = Instant::now() + Duration::from_secs(60);
    assert!(b.acquire(&user("a"), far).await.is_ok());
    let b2 = b.clone();
    let waiting = tokio::spawn(async move { b2.acquire(&user("b"), far).await });
    tokio::task::yield_now().await;
    assert_eq!(b.status().queued, 1);
    waiting.abort();
    let _ = waiting.await;
    assert_eq!(b.status().queued, 0);
    assert_eq!(b.status().waiting_users, 0);
    // a waiter whose permit does not come in time (here: a pause begins) leaves too
    let b3 = b.clone();
    let deadline = Instant::now() + Duration::from_millis(1_500);
    let late = tokio::spawn(async move { b3.acquire(&user("c"), deadline).await });
    tokio::task::yield_now().await;
    assert_eq!(b.status().queued, 1);
    b.pause(Duration::from_secs(5)).await;
    let e = late.await.unwrap().unwrap_err();
    assert_eq!(e.reason, BusyReason::TimedOut);
    assert_eq!(Instant::now(), deadline);
    assert_eq!(b.status().queued, 0);
}

#[tokio::test(start_paused = true)]
async fn one_user_cannot_fill_the_queue_beyond_what_max_wait_serves() {
    let cfg = config("4/s", 1, 1_100);
    let p = Params::from_config(&cfg);
    assert_eq!(p.per_user, 6);
    assert_eq!(p.capacity, 64);
    let b = Budget::new(&cfg).unwrap();
    let far = Instant::now() + Duration::from_secs(60);
    let mut handles = Vec::new();
    for _ in 0..10 {
        let b = b.clone();
        handles.push(tokio::spawn(
            async move { b.acquire(&user("a"), far).await },
        ));
    }
    let mut ok = 0;
    let mut refused = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(matches!(
                    e.reason,
                    BusyReason::MaxWait | BusyReason::UserQueueFull
                ));
                refused += 1;
            }
        }
    }
    // 1 immediate + 4 queued within 1.1 s at 4/s
    assert_eq!((ok, refused), (5, 5));
}

#[test]
fn fallback_params_take_the_share() {
    let mut cfg = config("4/s", 4, 10_000);
    cfg.redis_fallback_share = 0.25;
    let p = Params::from_config(&cfg);
    assert_eq!(p.gcra.interval(), Duration::from_millis(250));
    assert_eq!(p.fallback.interval(), Duration::from_secs(1));
    // burst 4 * 0.25 = 1: no tolerance left to trim
    assert_eq!(p.fallback.tolerance(), Duration::ZERO);
}
