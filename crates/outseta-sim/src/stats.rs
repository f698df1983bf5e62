//! Request statistics for tests and demos: counts by `METHOD path-template` and status, the
//! number of 429s sent, and when requests carrying the valid API key arrived (µs since the
//! simulator started), so a test can check the rate a gateway sends at in any window.
//!
//! # Guarantees
//! - Keys come from the fixed route table (unmatched paths count as `METHOD (unmatched)`,
//!   unusual methods as `OTHER`), so the map stays small whatever clients send.
//! - At most [`MAX_ARRIVALS`] arrival times are kept (the oldest are dropped).
//! - The lock is held only to bump or copy a counter.
//! - Observing changes nothing that a client of the simulated API sees.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

/// Arrival times kept.
pub const MAX_ARRIVALS: usize = 10_000;

#[derive(Debug)]
pub struct Stats {
    by_route: Mutex<HashMap<String, BTreeMap<u16, u64>>>,
    rate_limited: AtomicU64,
    total: AtomicU64,
    started: Instant,
    arrivals: Mutex<VecDeque<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            by_route: Mutex::default(),
            rate_limited: AtomicU64::default(),
            total: AtomicU64::default(),
            started: Instant::now(),
            arrivals: Mutex::default(),
        }
    }
}

/// A method name safe to use in a stats key.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

impl Stats {
    /// A request with the valid API key arrived (before the rate limit judged it).
    pub fn arrived_with_api_key(&self) {
        let at = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut a = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        if a.len() >= MAX_ARRIVALS {
            a.pop_front();
        }
        a.push_back(at);
    }

    pub fn record(&self, key: String, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let mut map = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key).or_default().entry(status).or_default() += 1;
    }

    /// `{"requests": {"GET /api/v1/crm/people": {"200": 3}}, "rate_limited": n, "total": n,
    /// "api_key_arrivals_us": [..]}`
    pub fn snapshot(&self) -> Value {
        let arrivals: Vec<u64> = self
            .arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        let map = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        let requests: serde_json::Map<String, Value> = map
            .iter()
            .map(|(k, by_status)| {
                let s: serde_json::Map<String, Value> = by_status
                    .iter()
                    .map(|(status, n)| (status.to_string(), json!(n)))
                    .collect();
                (k.clone(), Value::Object(s))
            })
            .collect();
        json!({
            "requests": requests,
            "rate_limited": self.rate_limited.load(Ordering::Relaxed),
            "total": self.total.load(Ordering::Relaxed),
            "api_key_arrivals_us": arrivals,
        })
    }

    pub fn reset(&self) {
        self.by_route
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.rate_limited.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_key_and_status() {
        let s = Stats::default();
        s.record("GET /a".into(), 200);
        s.record("GET /a".into(), 200);
        s.record("GET /a".into(), 429);
        let v = s.snapshot();
        assert_eq!(v["requests"]["GET /a"]["200"], 2);
        assert_eq!(v["requests"]["GET /a"]["429"], 1);
        assert_eq!(v["rate_limited"], 1);
        assert_eq!(v["total"], 3);
        s.arrived_with_api_key();
        s.arrived_with_api_key();
        let v = s.snapshot();
        let a = v["api_key_arrivals_us"].as_array().unwrap();
        assert_eq!(a.len(), 2);
        assert!(a[0].as_u64() <= a[1].as_u64());
        s.reset();
        assert_eq!(s.snapshot()["total"], 0);
        assert_eq!(s.snapshot()["api_key_arrivals_us"], json!([]));
        assert_eq!(method_label("BREW"), "OTHER");
    }
}
