//! The pause after an upstream 429: Outseta said "too many", so the whole budget stops for
//! its `Retry-After` (1 s when absent, as Outseta documents none).
//!
//! # Guarantees
//! - A pause only ever extends: a shorter `Retry-After` arriving during a longer pause
//!   changes nothing.
//! - A pause is capped at [`MAX_PAUSE`], so a hostile or broken `Retry-After` cannot stop the
//!   gateway for days.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::RETRY_AFTER;
use tokio::time::Instant;

/// Used when a 429 carries no (usable) `Retry-After`.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause honoured.
pub const MAX_PAUSE: Duration = Duration::from_secs(600);

/// How long an upstream 429 asks us to wait: `Retry-After` as delta-seconds or an HTTP date,
/// else [`DEFAULT_PAUSE`]; at most [`MAX_PAUSE`].
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Duration {
    let Some(v) = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()) else {
        return DEFAULT_PAUSE;
    };
    let v = v.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(at) = httpdate::parse_http_date(v) {
        at.duration_since(now).unwrap_or(Duration::ZERO)
    } else {
        DEFAULT_PAUSE
    };
    d.min(MAX_PAUSE)
}

/// Until when the budget is paused.
#[derive(Debug, Default)]
pub struct Pause {
    until: Mutex<Option<Instant>>,
}

impl Pause {
    /// Pauses until `now + d` (or keeps a later end); returns the end.
    pub fn extend(&self, now: Instant, d: Duration) -> Instant {
        let end = now + d.min(MAX_PAUSE);
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let end = until.map_or(end, |u| u.max(end));
        *until = Some(end);
        end
    }

    /// What is left of the pause at `now`, if any.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        match *until {
            Some(u) if u > now => Some(u - now),
            Some(_) => {
                *until = None;
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), DEFAULT_PAUSE);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h, now), Duration::from_secs(2));
        h.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&h, now), MAX_PAUSE);
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), DEFAULT_PAUSE);
        let at = httpdate::fmt_http_date(now + Duration::from_secs(5));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&at).unwrap());
        assert_eq!(retry_after(&h, now), Duration::from_secs(5));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Duration::ZERO);
    }

    #[test]
    fn pauses_only_extend_and_expire() {
        let p = Pause::default();
        let t0 = Instant::now();
        assert_eq!(p.remaining(t0), None);
        p.extend(t0, Duration::from_secs(2));
        p.extend(t0, Duration::from_secs(1));
        assert_eq!(p.remaining(t0), Some(Duration::from_secs(2)));
        assert_eq!(
            p.remaining(t0 + Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(p.remaining(t0 + Duration::from_secs(2)), None);
        p.extend(t0, Duration::from_secs(100_000));
        assert_eq!(p.remaining(t0), Some(MAX_PAUSE));
    }
}
