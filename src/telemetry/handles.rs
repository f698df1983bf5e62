//! Registered metric handles for the request path.
//!
//! `metrics::counter!(NAME, "rule" => rule.to_string(), ...)` builds label `String`s and
//! hashes the whole key into the recorder's registry on every call: on a cache hit that was
//! several allocations and registry lookups per request. The request path instead asks a
//! [`Handles`] table keyed by the label values it already holds (an `Arc<str>` rule name, a
//! `&'static str`, a status code) and records into the handle registered the first time.
//!
//! # Guarantees
//! - Bounded: a table remembers at most [`CAP`] label sets; past that it registers through the
//!   recorder on every call, as the macros do, so unusual label sets (arbitrary upstream
//!   statuses) cost speed, never memory.
//! - Same series as the macros: a handle is created with exactly the name and labels the
//!   macro form would use, from the process-wide recorder, the first time a label set is seen
//!   (so a table filled before a recorder is installed would hold no-op handles; the gateway
//!   installs its recorder before it serves).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex};

use metrics::{Counter, Gauge, Histogram};

use super::metrics as m;

/// The most label sets one table remembers.
pub const CAP: usize = 4096;

/// Handles of one metric, keyed by label values.
pub struct Handles<K, H> {
    // foldhash, not SipHash: the keys are label values from the config and status codes, never
    // chosen by a client, and this lookup runs several times per request.
    map: Mutex<HashMap<K, H, foldhash::fast::RandomState>>,
    make: fn(&K) -> H,
}

impl<K: Hash + Eq, H: Clone> Handles<K, H> {
    pub fn new(make: fn(&K) -> H) -> Self {
        Self {
            map: Mutex::new(HashMap::default()),
            make,
        }
    }

    /// The handle for `key`, registered on first use.
    pub fn get(&self, key: K) -> H {
        let Ok(mut map) = self.map.lock() else {
            return (self.make)(&key);
        };
        if let Some(h) = map.get(&key) {
            return h.clone();
        }
        let h = (self.make)(&key);
        if map.len() < CAP {
            map.insert(key, h.clone());
        }
        h
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

type RuleKey = Arc<str>;

/// `gateway_requests_total{rule, decision, status}`.
pub static REQUESTS: LazyLock<Handles<(RuleKey, &'static str, u16), Counter>> =
    LazyLock::new(|| {
        Handles::new(|(rule, decision, status)| {
            metrics::counter!(m::REQUESTS,
                "rule" => rule.to_string(),
                "decision" => *decision,
                "status" => status.to_string()
            )
        })
    });

/// `gateway_request_duration_seconds{decision}`.
pub static REQUEST_DURATION: LazyLock<Handles<&'static str, Histogram>> = LazyLock::new(|| {
    Handles::new(|decision| metrics::histogram!(m::REQUEST_DURATION, "decision" => *decision))
});

/// `gateway_requests_in_flight`.
pub static IN_FLIGHT: LazyLock<Handles<(), Gauge>> =
    LazyLock::new(|| Handles::new(|()| metrics::gauge!(m::IN_FLIGHT)));

/// `gateway_upstream_duration_seconds{rule}`.
pub static UPSTREAM_DURATION: LazyLock<Handles<RuleKey, Histogram>> = LazyLock::new(|| {
    Handles::new(|rule| metrics::histogram!(m::UPSTREAM_DURATION, "rule" => rule.to_string()))
});

/// `gateway_upstream_requests_total{rule, credential, status}`; `status` is the code, or
/// `timeout` / `error` (as `0` / `1` in the key).
pub static UPSTREAM_REQUESTS: LazyLock<Handles<(RuleKey, &'static str, u16), Counter>> =
    LazyLock::new(|| {
        Handles::new(|(rule, credential, status)| {
            let status = match status {
                0 => "timeout".to_string(),
                1 => "error".to_string(),
                s => s.to_string(),
            };
            metrics::counter!(m::UPSTREAM_REQUESTS,
                "rule" => rule.to_string(),
                "credential" => *credential,
                "status" => status
            )
        })
    });

/// The cache's per-rule counters: `name{rule}` or `name{rule, reason}` (`reason` empty: none).
pub static CACHE: LazyLock<Handles<(&'static str, RuleKey, &'static str), Counter>> =
    LazyLock::new(|| {
        Handles::new(|(name, rule, reason)| {
            if reason.is_empty() {
                metrics::counter!(*name, "rule" => rule.to_string())
            } else {
                metrics::counter!(*name, "rule" => rule.to_string(), "reason" => *reason)
            }
        })
    });

pub static BUDGET_PERMITS: LazyLock<Handles<&'static str, Counter>> =
    LazyLock::new(|| Handles::new(|how| metrics::counter!(m::BUDGET_PERMITS, "how" => *how)));

pub static BUDGET_WAIT: LazyLock<Handles<(), Histogram>> =
    LazyLock::new(|| Handles::new(|()| metrics::histogram!(m::BUDGET_WAIT)));

pub static AUTH_FAILURES: LazyLock<Handles<&'static str, Counter>> = LazyLock::new(|| {
    Handles::new(|reason| metrics::counter!(m::AUTH_FAILURES, "reason" => *reason))
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_stops_remembering_at_its_cap_but_still_answers() {
        let t: Handles<usize, usize> = Handles::new(|k| *k * 2);
        for k in 0..CAP + 10 {
            assert_eq!(t.get(k), k * 2);
        }
        assert_eq!(t.len(), CAP);
        assert_eq!(t.get(CAP + 5), (CAP + 5) * 2);
        assert_eq!(t.get(3), 6);
    }
}
