//! The built-in Outseta simulator in-process, as the upstream of a gateway under test, and
//! what its `/__sim/stats` tells about the rate a gateway sent at.

use outseta_sim::SimOptions;
use serde_json::Value;

use super::gateway::{API_KEY, API_SECRET, AUDIENCE, ISSUER};

pub struct Sim {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Sim {
    /// The simulator with its per-API-key limit at `rate`/s (burst `rate`), accepting the
    /// test API key.
    pub async fn start(rate: u32) -> Self {
        let sim = outseta_sim::bind(SimOptions {
            rate,
            api_key: API_KEY.into(),
            api_secret: API_SECRET.into(),
            ..SimOptions::default()
        })
        .await
        .expect("bind the simulator");
        let base = sim.base_url();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(sim.serve(async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            stop: Some(stop),
        }
    }

    pub async fn stats(&self) -> Value {
        super::client::get(&format!("{}/__sim/stats", self.base), &[])
            .await
            .json()
    }

    pub async fn reset(&self) {
        super::client::send("POST", &format!("{}/__sim/reset-stats", self.base), &[], "").await;
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// API-key arrival times (µs) from a stats snapshot, sorted.
pub fn arrivals(stats: &Value) -> Vec<u64> {
    let mut a: Vec<u64> = stats["api_key_arrivals_us"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    a.sort_unstable();
    a
}

/// The most arrivals within any half-open window `[t, t + window_us)`.
pub fn max_in_window(sorted: &[u64], window_us: u64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        while sorted[hi] - sorted[lo] >= window_us {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// A gateway config (memory store unless `extra` says otherwise) in front of `upstream`,
/// verifying tokens from `jwks`.
pub fn config(upstream: &str, jwks: &str, extra: &str) -> String {
    format!(
        r#"
[outseta]
upstream = "{upstream}"
jwks_url = "{jwks}"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"

[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
request_timeout = "30s"
upstream_timeout = "5s"

{extra}
"#
    )
}
