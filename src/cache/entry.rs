//! A buffered upstream answer: what the store holds, and what a leader hands its followers.
//!
//! Headers are kept as the forwarder returned them (hop-by-hop and `Set-Cookie` already
//! removed) minus `Content-Length`, which the server recomputes from the exact body. The body
//! is a `Bytes`, shared by every response built from the entry.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// `Cache-Status` (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Bookkeeping per stored entry that is not in its key, headers or body: the `Entry` itself,
/// its `Arc`, moka's node, the path index slot and the header map's tables. Measured with
/// `cache_rss` (see the README), rounded up; it keeps `max_size` an honest bound on memory.
pub const ENTRY_OVERHEAD: u64 = 512;

/// Per-header cost beyond the name and value bytes (the map's entry and index slots).
const HEADER_OVERHEAD: u64 = 48;

#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the upstream answer was received.
    pub stored_at: Instant,
    /// Fresh for this long after `stored_at`.
    pub ttl: Duration,
    /// Kept (for stale serving) this long after `stored_at`.
    pub keep: Duration,
    /// Unique per entry: lets the eviction listener tell a replaced value from the current one.
    pub id: u64,
    /// Visible to lookups. Set by the store once it has checked that no invalidation raced the
    /// fetch (see `store.rs`); entries built only for followers stay unarmed.
    armed: AtomicBool,
    /// No background refresh before this age (milliseconds): set after a failed refresh so a
    /// failing upstream is not called once per stale-served request.
    refresh_after_ms: AtomicU64,
}

impl Entry {
    pub fn new(
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        ttl: Duration,
        keep: Duration,
        id: u64,
    ) -> Self {
        headers.remove(header::CONTENT_LENGTH);
        Self {
            status,
            headers,
            body,
            stored_at: Instant::now(),
            ttl,
            keep,
            id,
            armed: AtomicBool::new(false),
            refresh_after_ms: AtomicU64::new(0),
        }
    }

    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    pub(super) fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at)
    }

    /// Whether a background refresh may start at `now`.
    pub fn may_refresh(&self, now: Instant) -> bool {
        millis(self.age(now)) >= self.refresh_after_ms.load(Ordering::Relaxed)
    }

    /// No background refresh for `pause` from `now` (after one failed).
    pub fn hold_refresh(&self, now: Instant, pause: Duration) {
        self.refresh_after_ms
            .store(millis(self.age(now) + pause), Ordering::Relaxed);
    }

    /// The store weight of this entry under `key_len`: key + headers + body + bookkeeping.
    pub fn weight(&self, key_len: usize) -> u64 {
        weight(key_len, &self.headers, self.body.len())
    }

    /// A response carrying this entry's status, headers and body, plus `Cache-Status` (and
    /// `Age` when `age` is given). The only per-response work: the header map clone and the
    /// body box; the body bytes are shared.
    pub fn respond(&self, cache_status: HeaderValue, age: Option<Duration>) -> Response<Body> {
        let mut rsp = Response::new(body::full(self.body.clone()));
        *rsp.status_mut() = self.status;
        let h = rsp.headers_mut();
        *h = self.headers.clone();
        if let Some(age) = age {
            h.insert(header::AGE, HeaderValue::from(age.as_secs()));
        }
        h.insert(CACHE_STATUS, cache_status);
        rsp
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Weight of an entry with this key length, headers and body length, in bytes.
pub fn weight(key_len: usize, headers: &HeaderMap, body_len: usize) -> u64 {
    let headers: u64 = headers
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len()) as u64 + HEADER_OVERHEAD)
        .sum();
    key_len as u64 + headers + body_len as u64 + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_counts_key_headers_body_and_overhead() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let w = weight(10, &h, 1000);
        assert_eq!(
            w,
            10 + ("content-type".len() + "application/json".len()) as u64
                + HEADER_OVERHEAD
                + 1000
                + ENTRY_OVERHEAD
        );
        let e = Entry::new(
            StatusCode::OK,
            h,
            Bytes::from(vec![b'x'; 1000]),
            Duration::from_secs(1),
            Duration::from_secs(2),
            1,
        );
        assert_eq!(e.weight(10), w);
    }

    #[test]
    fn content_length_is_not_kept_and_responses_share_the_body() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        h.insert("x-a", HeaderValue::from_static("1"));
        let e = Entry::new(
            StatusCode::OK,
            h,
            Bytes::from_static(b"abc"),
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
        );
        assert!(!e.headers.contains_key(header::CONTENT_LENGTH));
        let r = e.respond(
            HeaderValue::from_static("outseta-gateway; hit; ttl=1"),
            Some(Duration::from_millis(2500)),
        );
        assert_eq!(r.headers()["x-a"], "1");
        assert_eq!(r.headers()[header::AGE], "2");
        assert_eq!(r.headers()[CACHE_STATUS], "outseta-gateway; hit; ttl=1");
        assert!(!e.is_armed());
    }

    #[test]
    fn refresh_hold() {
        let e = Entry::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::new(),
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
        );
        let t = e.stored_at + Duration::from_secs(2);
        assert!(e.may_refresh(t));
        e.hold_refresh(t, Duration::from_secs(1));
        assert!(!e.may_refresh(t + Duration::from_millis(999)));
        assert!(e.may_refresh(t + Duration::from_secs(1)));
    }
}
