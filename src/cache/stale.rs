//! Freshness, and serving stale entries.
//!
//! An entry is *fresh* for its rule's ttl. After that it is kept for
//! `max(stale_while_revalidate, stale_if_error)` so it can still answer:
//! - within `stale_while_revalidate` past its ttl, at once, while one background call
//!   refreshes it (`fwd=stale; detail=revalidating`);
//! - within `stale_if_error` past its ttl, when the upstream call fails — 5xx or 429 answer,
//!   timeout, refused or broken connection — or the shared budget cannot serve in time
//!   (`detail=upstream-error | upstream-timeout | upstream-busy`).

use std::time::{Duration, Instant};

use http::Response;

use super::entry::Entry;
use super::status::{CacheStatus, StaleReason};
use crate::body::Body;

/// The stale windows of `[cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

impl Windows {
    /// How long past its ttl an entry is kept.
    pub fn keep(&self) -> Duration {
        self.stale_while_revalidate.max(self.stale_if_error)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it; `ttl_left` is what remains of its freshness.
    Fresh { ttl_left: Duration },
    /// Serve it stale and refresh it in the background.
    Revalidate,
    /// Fetch; serve it stale if the fetch fails.
    IfError,
    /// Too old for anything.
    Expired,
}

pub fn classify(entry: &Entry, now: Instant, w: Windows) -> Freshness {
    let age = entry.age(now);
    if age < entry.ttl {
        return Freshness::Fresh {
            ttl_left: entry.ttl - age,
        };
    }
    let over = age - entry.ttl;
    if over < w.stale_while_revalidate {
        Freshness::Revalidate
    } else if over < w.stale_if_error {
        Freshness::IfError
    } else {
        Freshness::Expired
    }
}

/// The stale entry as a response, with `Age` and `Cache-Status: …; fwd=stale; detail=…`.
pub fn respond(entry: &Entry, reason: StaleReason) -> Response<Body> {
    entry.respond(
        CacheStatus::Stale(reason).header_value(),
        Some(entry.age(Instant::now())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    fn entry(ttl: Duration) -> Entry {
        Entry::new(StatusCode::OK, &HeaderMap::new(), Bytes::new(), ttl, ttl, 1)
    }

    const W: Windows = Windows {
        stale_while_revalidate: Duration::from_secs(30),
        stale_if_error: Duration::from_secs(300),
    };

    #[test]
    fn windows() {
        let e = entry(Duration::from_secs(60));
        let at = |s| e.stored_at + Duration::from_secs(s);
        assert_eq!(
            classify(&e, at(18), W),
            Freshness::Fresh {
                ttl_left: Duration::from_secs(42)
            }
        );
        assert_eq!(classify(&e, at(60), W), Freshness::Revalidate);
        assert_eq!(classify(&e, at(89), W), Freshness::Revalidate);
        assert_eq!(classify(&e, at(90), W), Freshness::IfError);
        assert_eq!(classify(&e, at(359), W), Freshness::IfError);
        assert_eq!(classify(&e, at(360), W), Freshness::Expired);
        assert_eq!(W.keep(), Duration::from_secs(300));
    }

    #[test]
    fn no_stale_windows() {
        let w = Windows {
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        };
        let e = entry(Duration::from_secs(1));
        assert_eq!(
            classify(&e, e.stored_at + Duration::from_secs(1), w),
            Freshness::Expired
        );
    }
}
