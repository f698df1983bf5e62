//! Registered metric handles for the request path.
//!
//! `metrics::counter!(NAME, "rule" => rule.to_string(), ...)` builds label `String`s and
//! hashes the whole key into the recorder's registry on every call: several allocations and
//! registry lookups per request. The request path instead asks a
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

/// A rule name as a table key. Every request of a rule holds its snapshot's one `Arc`, so
/// keys are compared by address first and by content only when the addresses differ (after a
/// reload), so the common lookup makes no `memcmp` call; hashed by content, so equal names
/// always meet.
#[derive(Clone)]
pub struct RuleKey(pub Arc<str>);

impl PartialEq for RuleKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for RuleKey {}

impl Hash for RuleKey {
    fn hash<S: std::hash::Hasher>(&self, state: &mut S) {
        self.0.hash(state);
    }
}

/// A label value from the code (`decision`, `reason`, …), compared by address first, as
/// [`RuleKey`].
#[derive(Clone, Copy)]
pub struct Label(pub &'static str);

impl PartialEq for Label {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0 == other.0
    }
}

impl Eq for Label {}

impl Hash for Label {
    fn hash<S: std::hash::Hasher>(&self, state: &mut S) {
        self.0.hash(state);
    }
}

/// `gateway_requests_total{rule, decision, status}`.
pub static REQUESTS: LazyLock<Handles<(RuleKey, Label, u16), Counter>> = LazyLock::new(|| {
    Handles::new(|(rule, decision, status)| {
        metrics::counter!(m::REQUESTS,
            "rule" => rule.0.to_string(),
            "decision" => decision.0,
            "status" => status.to_string()
        )
    })
});

/// `gateway_request_duration_seconds{decision}`.
pub static REQUEST_DURATION: LazyLock<Handles<Label, Histogram>> = LazyLock::new(|| {
    Handles::new(|decision| metrics::histogram!(m::REQUEST_DURATION, "decision" => decision.0))
});

/// `gateway_requests_in_flight`.
pub static IN_FLIGHT: LazyLock<Handles<(), Gauge>> =
    LazyLock::new(|| Handles::new(|()| metrics::gauge!(m::IN_FLIGHT)));

/// `gateway_upstream_duration_seconds{rule}`.
pub static UPSTREAM_DURATION: LazyLock<Handles<RuleKey, Histogram>> = LazyLock::new(|| {
    Handles::new(|rule| metrics::histogram!(m::UPSTREAM_DURATION, "rule" => rule.0.to_string()))
});

/// `gateway_upstream_requests_total{rule, credential, status}`; `status` is the code, or
/// `timeout` / `error` (as `0` / `1` in the key).
pub static UPSTREAM_REQUESTS: LazyLock<Handles<(RuleKey, Label, u16), Counter>> =
    LazyLock::new(|| {
        Handles::new(|(rule, credential, status)| {
            let status = match status {
                0 => "timeout".to_string(),
                1 => "error".to_string(),
                s => s.to_string(),
            };
            metrics::counter!(m::UPSTREAM_REQUESTS,
                "rule" => rule.0.to_string(),
                "credential" => credential.0,
                "status" => status
            )
        })
    });

/// The cache's per-rule counters: `name{rule}` or `name{rule, reason}` (`reason` empty: none).
pub static CACHE: LazyLock<Handles<(Label, RuleKey, Label), Counter>> = LazyLock::new(|| {
    Handles::new(|(name, rule, reason)| {
        if reason.0.is_empty() {
            metrics::counter!(name.0, "rule" => rule.0.to_string())
        } else {
            metrics::counter!(name.0, "rule" => rule.0.to_string(), "reason" => reason.0)
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
    fn rule_keys_meet_by_name_whether_or_not_they_share_an_arc() {
        let t: Handles<(RuleKey, Label), String> =
            Handles::new(|(rule, label)| format!("{}/{}", rule.0, label.0));
        let a: Arc<str> = Arc::from("read own person");
        let reloaded: Arc<str> = Arc::from(String::from("read own person"));
        assert!(!Arc::ptr_eq(&a, &reloaded));
        let label = String::from("allow").leak();
        assert_eq!(
            t.get((RuleKey(a.clone()), Label("allow"))),
            "read own person/allow"
        );
        // Same name from another snapshot, same label from another address: the same entry.
        assert_eq!(
            t.get((RuleKey(reloaded), Label(label))),
            "read own person/allow"
        );
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.get((RuleKey(Arc::from("plans")), Label("allow"))),
            "plans/allow"
        );
        assert_eq!(t.get((RuleKey(a), Label("deny"))), "read own person/deny");
        assert_eq!(t.len(), 3);
    }

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
