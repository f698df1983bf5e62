//! Hot reload: a changed rule takes effect without a dropped request, an invalid edit is
//! refused and the old rule keeps working, SIGHUP reloads, the cache and the JWKS keys survive.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::client::{bearer, get};
use support::gateway::{API_KEY, API_SECRET, AUDIENCE, Gateway, ISSUER, config_text};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;
use support::process::{Proc, temp_file};

/// One rule reading a person under `when`, plus `extra` rule keys. The load loop below is one
/// user as fast as it can go: the per-user limit is kept out of its way.
fn person_rule(when: &str, extra: &str) -> String {
    format!(
        r#"
[user_limit]
rate = "100000/min"
burst = 10000

[[rule]]
name = "read person"
methods = ["GET"]
path = "/api/v1/crm/people/{{uid}}"
when = "{when}"
{extra}
"#
    )
}

const OWN: &str = "path.uid == claims.sub";
const CACHED: &str = "cache = \"60s\"";
const OWN_OR_U2: &str = "path.uid == claims.sub || path.uid == 'u2'";

async fn wait_for(mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_changed_rule_takes_effect_without_a_dropped_request_and_bad_edits_are_refused() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let path = temp_file("reload.toml", &config_text(&mock, &person_rule(OWN, "")));
    let gw = Gateway::start_with(&mock, outseta_gateway::Config::load(&path).unwrap()).await;
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let url = gw.url("/api/v1/crm/people/u2");
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 403);

    // Traffic keeps flowing during the reload; every answer must be the old or the new one.
    let stop = Arc::new(AtomicBool::new(false));
    let odd = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, odd, total, url, auth) = (
            stop.clone(),
            odd.clone(),
            total.clone(),
            url.clone(),
            auth.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let s = get(&url, &[("authorization", &auth)]).await.status;
                total.fetch_add(1, Ordering::Relaxed);
                if s != 200 && s != 403 {
                    odd.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::fs::write(&path, config_text(&mock, &person_rule(OWN_OR_U2, ""))).unwrap();
    assert!(
        wait_for(async || get(&url, &[("authorization", &auth)]).await.status == 200).await,
        "the new rule never took effect"
    );

    // An invalid edit is refused; the rule in force keeps working.
    std::fs::write(&path, config_text(&mock, "[[rule]]\nname = \"broken\"\nmethods = [\"GET\"]\npath = \"/x\"\nwhen = \"claims.sub ==\"\n")).unwrap();
    let metrics_url = format!("http://{}/metrics", gw.admin);
    assert!(
        wait_for(async || get(&metrics_url, &[])
            .await
            .text()
            .contains("gateway_config_reloads_total{result=\"error\"}"))
        .await,
        "the invalid edit was not seen"
    );
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 200);
    std::fs::write(&path, "this is [not toml").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(get(&url, &[("authorization", &auth)]).await.status, 200);

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(total.load(Ordering::Relaxed) > 10);
    assert_eq!(
        odd.load(Ordering::Relaxed),
        0,
        "some requests failed during the reload"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_the_binary() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let path = temp_file("hup.toml", &config_text(&mock, &person_rule(OWN, "")));
    let p = Proc::spawn(
        &[
            "serve",
            "-c",
            path.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[
            ("OUTSETA_API_KEY", API_KEY),
            ("OUTSETA_API_SECRET", API_SECRET),
        ],
    );
    let (listen, admin) = p.wait_serving().await;
    assert!(
        wait_for(async || get(&format!("http://{admin}/readyz"), &[]).await.status == 200).await
    );
    p.signal("HUP");
    let metrics_url = format!("http://{admin}/metrics");
    assert!(
        wait_for(async || get(&metrics_url, &[])
            .await
            .text()
            .contains("gateway_config_reloads_total{result=\"ok\"} 1"))
        .await,
        "SIGHUP did not reload:\n{}",
        p.output()
    );
    // Still serving, same listener.
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    assert_eq!(
        get(
            &format!("http://{listen}/api/v1/crm/people/u1"),
            &[("authorization", &auth)]
        )
        .await
        .status,
        200
    );
    assert!(p.output().contains("configuration reloaded"));
}

#[tokio::test]
async fn the_cache_and_the_jwks_keys_survive_a_reload() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let path = temp_file(
        "reload-cache.toml",
        &config_text(&mock, &person_rule(OWN, CACHED)),
    );
    let gw = Gateway::start_with(&mock, outseta_gateway::Config::load(&path).unwrap()).await;
    let auth = bearer(&key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let url = gw.url("/api/v1/crm/people/u1");
    let first = get(&url, &[("authorization", &auth)]).await;
    assert_eq!(first.status, 200);
    assert_eq!(mock.hits("/api/v1/crm/people/u1"), 1);
    let jwks_fetches = mock.jwks_fetches();

    // A rule edit (same path, wider condition): reloaded, and the entry stored before it is
    // still served without a new upstream call; the JWKS keys are not refetched.
    std::fs::write(&path, config_text(&mock, &person_rule(OWN_OR_U2, CACHED))).unwrap();
    // (The metrics recorder is process-wide and shared with the other tests here: wait for
    // the new rule itself.)
    let other = gw.url("/api/v1/crm/people/u2");
    assert!(
        wait_for(async || get(&other, &[("authorization", &auth)]).await.status == 200).await,
        "the edit was not reloaded"
    );
    let again = get(&url, &[("authorization", &auth)]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.text(), first.text());
    let status = again.header("cache-status").unwrap_or_default();
    assert!(status.contains("hit"), "{status}");
    assert_eq!(mock.hits("/api/v1/crm/people/u1"), 1, "the cache was lost");
    assert_eq!(mock.jwks_fetches(), jwks_fetches, "the JWKS keys were lost");
    gw.shutdown().await;
}

/// The size of the file at `path` (0 when absent).
fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn only_writes_to_the_config_trigger_a_reload_not_neighbours_logs_or_reading_it() {
    use std::process::{Command, Stdio};
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let cfg = temp_file("watched.toml", &config_text(&mock, &person_rule(OWN, "")));
    let dir = cfg.parent().unwrap().to_path_buf();
    let log = dir.join("gateway.log");
    let mut child = Command::new(support::process::BIN)
        .args(["serve", "-c", cfg.to_str().unwrap(), "--log-format", "json"])
        .env("RUST_LOG", "trace")
        .env("OUTSETA_API_KEY", API_KEY)
        .env("OUTSETA_API_SECRET", API_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn outseta-gateway");
    // The admin address, from the serving line in the log file.
    let admin = wait_for(async || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("outseta-gateway serving")
    })
    .await
    .then(|| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "outseta-gateway serving")
            .and_then(|v| v["admin"].as_str().map(str::to_string))
    })
    .flatten();
    let Some(admin) = admin else {
        let _ = child.kill();
        panic!("the gateway did not start");
    };
    // The log file is beside the config: its own writes must not feed the watcher's logging.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = size(&log);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = size(&log) - before;
    // 200 writes to a neighbouring file: no reload attempt at all.
    let neighbour = dir.join("neighbour.txt");
    for i in 0..200 {
        std::fs::write(&neighbour, format!("line {i}\n")).unwrap();
    }
    tokio::time::sleep(reload_debounce() * 4).await;
    let neighbours_only = reload_attempts(&admin).await;
    // One write to the config itself: one attempt, and reading the file for it wakes nothing.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n# edited\n")).unwrap();
    tokio::time::sleep(reload_debounce() * 4 + Duration::from_secs(2)).await;
    let after_edit = reload_attempts(&admin).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        grown < 512 * 1024,
        "an idle gateway wrote {grown} bytes of log in 2 s beside its config"
    );
    assert_eq!(neighbours_only, 0.0);
    assert_eq!(after_edit, 1.0);
}

/// Reload attempts so far, whatever their result.
async fn reload_attempts(admin: &str) -> f64 {
    let metrics = get(&format!("http://{admin}/metrics"), &[]).await.text();
    metrics
        .lines()
        .filter(|l| l.starts_with("gateway_config_reloads_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn reload_debounce() -> Duration {
    outseta_gateway::reload::DEBOUNCE
}
