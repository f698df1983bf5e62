//! A buffered upstream answer: what the store holds, and what a leader hands its followers.
//!
//! Headers are kept as the forwarder returned them (hop-by-hop and `Set-Cookie` already
//! removed) minus `Content-Length`, which the server recomputes from the exact body. They are
//! stored as an exactly-sized slice that owns its bytes, not as a `HeaderMap`: a map's
//! tables cost ~450 bytes more per entry (measured with `examples/cache_rss.rs`), and
//! building a map from the slice per response costs about what cloning one does
//! (`benches/cache.rs`, "headers: …"). The body is a `Bytes`, shared by every response built
//! from the entry.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// `Cache-Status` (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Memory per stored entry beyond its key, header and body bytes: the `Entry` and its `Arc`,
/// moka's entry, deque and timer nodes, the path index slot, allocator rounding. Calibrated
/// with `examples/cache_rss.rs` (README, "Response cache") so that `max_size` bounds the
/// resident memory the cache really holds.
pub const ENTRY_OVERHEAD: u64 = 896;

/// Per-header memory beyond its name and value bytes: the slice slot and the value's
/// allocation.
pub const HEADER_OVERHEAD: u64 = 96;

/// Room left in a built response's header map for the fields the outer layers add
/// (`RateLimit-Policy`, `RateLimit`, `x-request-id`, the CORS fields), so that adding them
/// does not regrow the map on every hit.
const LATER_HEADERS: usize = 6;

/// Headers as stored: owned bytes, exactly sized.
pub type Headers = Box<[(HeaderName, HeaderValue)]>;

#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    pub headers: Headers,
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
    /// An entry for `status`, `headers` (copied into a buffer of their own, see [`own`]) and `body` (kept as is:
    /// the caller copies it if it will be stored).
    pub fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        ttl: Duration,
        keep: Duration,
        id: u64,
    ) -> Self {
        let (headers, _) = own(headers, &[]);
        Self::from_parts(status, headers, body, ttl, keep, id)
    }

    /// An entry to store: `headers` and `body` copied into one exactly-sized buffer that the
    /// header values and the body are slices of (see [`own`]).
    pub fn owned(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        ttl: Duration,
        keep: Duration,
        id: u64,
    ) -> Self {
        let (headers, body) = own(headers, body);
        Self::from_parts(status, headers, body, ttl, keep, id)
    }

    fn from_parts(
        status: StatusCode,
        headers: Headers,
        body: Bytes,
        ttl: Duration,
        keep: Duration,
        id: u64,
    ) -> Self {
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
        weight(
            key_len,
            self.headers.iter().map(|(k, v)| (k, v)),
            self.body.len(),
        )
    }

    /// A response carrying this entry's status, headers and body, plus `Cache-Status` (and
    /// `Age` when `age` is given). Per response: one header map (two allocations), the body
    /// box; header values and body bytes are shared.
    pub fn respond(&self, cache_status: HeaderValue, age: Option<Duration>) -> Response<Body> {
        let mut h = HeaderMap::with_capacity(self.headers.len() + 2 + LATER_HEADERS);
        for (k, v) in self.headers.iter() {
            h.append(k.clone(), v.clone());
        }
        if let Some(age) = age {
            h.insert(header::AGE, HeaderValue::from(age.as_secs()));
        }
        h.insert(CACHE_STATUS, cache_status);
        let mut rsp = Response::new(body::full(self.body.clone()));
        *rsp.status_mut() = self.status;
        *rsp.headers_mut() = h;
        rsp
    }
}

/// The headers to keep (all but `Content-Length`) and `body`, copied into one buffer of their
/// own that the returned header values and body are slices of.
///
/// Own bytes: header values parsed by hyper are slices of the connection's read buffer, and
/// keeping them would keep that whole buffer alive for the entry's lifetime, outside the
/// weight accounted for. One buffer: a response built from the entry clones every value and
/// the body; with one allocation each, those clones would touch as many reference counts, each
/// a cold cache line under many users, where slices of one buffer share one.
pub fn own(headers: &HeaderMap, body: &[u8]) -> (Headers, Bytes) {
    let kept = || {
        headers
            .iter()
            .filter(|(name, _)| *name != header::CONTENT_LENGTH)
    };
    let values: usize = kept().map(|(_, v)| v.len()).sum();
    let mut buf = BytesMut::with_capacity(values + body.len());
    for (_, v) in kept() {
        buf.extend_from_slice(v.as_bytes());
    }
    buf.extend_from_slice(body);
    let buf = buf.freeze();
    let mut at = 0;
    let headers = kept()
        .filter_map(|(name, value)| {
            let range = at..at + value.len();
            at = range.end;
            let name = HeaderName::from_bytes(name.as_str().as_bytes()).ok()?;
            let mut v = HeaderValue::from_maybe_shared(buf.slice(range)).ok()?;
            v.set_sensitive(value.is_sensitive());
            Some((name, v))
        })
        .collect();
    (headers, buf.slice(values..))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Weight of an entry with this key length, headers and body length, in bytes.
pub fn weight<'a>(
    key_len: usize,
    headers: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    body_len: usize,
) -> u64 {
    let headers: u64 = headers
        .map(|(k, v)| (k.as_str().len() + v.len()) as u64 + HEADER_OVERHEAD)
        .sum();
    key_len as u64 + headers + body_len as u64 + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn weight_counts_key_headers_body_and_overhead() {
        let h = map(&[("content-type", "application/json")]);
        let w = weight(10, h.iter(), 1000);
        assert_eq!(
            w,
            10 + ("content-type".len() + "application/json".len()) as u64
                + HEADER_OVERHEAD
                + 1000
                + ENTRY_OVERHEAD
        );
        let e = Entry::new(
            StatusCode::OK,
            &h,
            Bytes::from(vec![b'x'; 1000]),
            Duration::from_secs(1),
            Duration::from_secs(2),
            1,
        );
        assert_eq!(e.weight(10), w);
    }

    #[test]
    fn content_length_is_not_kept_and_responses_share_the_body() {
        let h = map(&[("content-length", "3"), ("x-a", "1"), ("x-a", "2")]);
        let e = Entry::new(
            StatusCode::OK,
            &h,
            Bytes::from_static(b"abc"),
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
        );
        assert_eq!(e.headers.len(), 2);
        let r = e.respond(
            HeaderValue::from_static("outseta-gateway; hit; ttl=1"),
            Some(Duration::from_millis(2500)),
        );
        let values: Vec<_> = r.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert!(!r.headers().contains_key(header::CONTENT_LENGTH));
        assert_eq!(r.headers()[header::AGE], "2");
        assert_eq!(r.headers()[CACHE_STATUS], "outseta-gateway; hit; ttl=1");
        assert!(!e.is_armed());
    }

    #[test]
    fn kept_headers_own_their_bytes() {
        let buf = Bytes::from_static(b"application/json; more of the read buffer");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_maybe_shared(buf.slice(0..16)).unwrap(),
        );
        let (kept, body) = own(&h, b"{}");
        assert_eq!(kept[0].1, "application/json");
        assert_ne!(kept[0].1.as_bytes().as_ptr(), buf.as_ptr());
        // The body follows the values in the same buffer.
        assert_eq!(body, "{}");
        assert_eq!(
            kept[0].1.as_bytes().as_ptr().wrapping_add(16),
            body.as_ptr()
        );
    }

    #[test]
    fn an_owned_entry_answers_like_one_built_from_its_parts() {
        let h = map(&[
            ("content-type", "application/json"),
            ("content-length", "2"),
            ("x-a", "1"),
            ("x-a", ""),
            ("etag", "\"v1\""),
        ]);
        let owned = Entry::owned(
            StatusCode::OK,
            &h,
            b"{}",
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
        );
        let built = Entry::new(
            StatusCode::OK,
            &h,
            Bytes::from_static(b"{}"),
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
        );
        assert_eq!(owned.body, "{}");
        assert_eq!(owned.headers, built.headers);
        assert_eq!(owned.weight(10), built.weight(10));
        let v = HeaderValue::from_static("outseta-gateway; hit; ttl=1");
        let (a, b) = (owned.respond(v.clone(), None), built.respond(v, None));
        assert_eq!(a.headers(), b.headers());
    }

    #[test]
    fn refresh_hold() {
        let e = Entry::new(
            StatusCode::OK,
            &HeaderMap::new(),
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
