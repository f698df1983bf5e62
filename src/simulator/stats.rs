//! Request statistics for tests and demos: counts by `METHOD path-template` and status, and
//! the number of 429s sent.
//!
//! # Guarantees
//! - Keys come from the fixed route table (unmatched paths count as `METHOD (unmatched)`,
//!   unusual methods as `OTHER`), so the map stays small whatever clients send.
//! - The lock is held only to bump or copy a counter.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Stats {
    by_route: Mutex<HashMap<String, BTreeMap<u16, u64>>>,
    rate_limited: AtomicU64,
    total: AtomicU64,
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
    pub fn record(&self, key: String, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let mut map = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key).or_default().entry(status).or_default() += 1;
    }

    /// `{"requests": {"GET /api/v1/crm/people": {"200": 3}}, "rate_limited": n, "total": n}`
    pub fn snapshot(&self) -> Value {
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
        })
    }

    pub fn reset(&self) {
        self.by_route
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.rate_limited.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
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
        s.reset();
        assert_eq!(s.snapshot()["total"], 0);
        assert_eq!(method_label("BREW"), "OTHER");
    }
}
