//! The byte-bounded store: a `moka` future cache weighted in bytes, plus a path index so
//! writes and purges can drop every entry of a path (any query, any user).
//!
//! # Bounds
//! - moka holds at most `max_size` bytes of weight (key + headers + body + bookkeeping, see
//!   [`super::entry::weight`]); entries over `max_size / 16` are refused before insertion.
//! - Each entry lives `ttl` plus the stale window (per-entry expiry, `KeepFor`).
//! - The path index holds exactly the keys moka holds: a key is indexed before it is inserted
//!   and unindexed by the eviction listener, which matches on the entry id so a replaced
//!   value never unindexes its successor.
//! - The log of recent invalidations is a ring of [`RECENT`] records.
//!
//! # Invalidation racing a fetch
//! A GET whose upstream call started before a write's invalidation may finish after it, with
//! the old data. Every fetch notes the invalidation sequence number when it starts
//! ([`Store::seq`]); [`Store::insert`] refuses to store if an invalidation covering its path
//! ran since (or if the ring no longer reaches back that far). Because moka's insert is async
//! and the index lock is never held across an `.await`, the check runs twice — before
//! indexing, and after the insert — and the entry only becomes visible to lookups (it is
//! *armed*) after the second check passes, inside the index lock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use super::entry::Entry;
use super::key::CacheKey;
use crate::telemetry::metrics as m;

/// Invalidations remembered for racing fetches.
pub const RECENT: usize = 1024;

/// Per-entry expiry: `Entry::keep` after insertion (or replacement).
struct KeepFor;

impl Expiry<CacheKey, Arc<Entry>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.keep)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep)
    }
}

/// What an invalidation covered.
#[derive(Debug, Clone)]
enum Target {
    /// One path (lower-cased), any query, any user.
    Path(Box<str>),
    /// Every path equal to or under this prefix (lower-cased).
    Prefix(Box<str>),
}

impl Target {
    fn covers(&self, lower_path: &str) -> bool {
        match self {
            Self::Path(p) => **p == *lower_path,
            Self::Prefix(p) => under_prefix(lower_path, p),
        }
    }
}

/// `path` equals `prefix` or lies under it (segment-wise: `/a/b` is under `/a`, `/ab` is not).
fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[derive(Debug, Default)]
struct Index {
    /// Lower-cased path → the keys stored under it and their entry ids.
    by_path: HashMap<Box<str>, HashMap<CacheKey, u64>>,
    /// Recent invalidations: (sequence number, target), oldest first.
    recent: VecDeque<(u64, Target)>,
    /// Highest sequence number no longer in `recent`.
    forgotten: u64,
}

impl Index {
    fn add(&mut self, key: &CacheKey, id: u64) {
        self.by_path
            .entry(lower(key.path()).into_boxed_str())
            .or_default()
            .insert(key.clone(), id);
    }

    /// Unindexes `key` if it still maps to entry `id`.
    fn remove_if(&mut self, key: &CacheKey, id: u64) {
        let path = lower(key.path());
        if let Some(keys) = self.by_path.get_mut(path.as_str()) {
            if keys.get(key) == Some(&id) {
                keys.remove(key);
            }
            if keys.is_empty() {
                self.by_path.remove(path.as_str());
            }
        }
    }

    /// Whether an invalidation covering `lower_path` ran after sequence number `since`.
    fn invalidated_since(&self, since: u64, lower_path: &str) -> bool {
        if since < self.forgotten {
            return true;
        }
        self.recent
            .iter()
            .rev()
            .take_while(|(seq, _)| *seq > since)
            .any(|(_, t)| t.covers(lower_path))
    }

    fn record(&mut self, seq: u64, target: Target) {
        if self.recent.len() == RECENT
            && let Some((old, _)) = self.recent.pop_front()
        {
            self.forgotten = old;
        }
        self.recent.push_back((seq, target));
    }
}

fn lower(path: &str) -> String {
    path.to_ascii_lowercase()
}

/// Shared with the eviction listener.
#[derive(Debug, Default)]
struct Shared {
    index: Mutex<Index>,
    /// Weight held by moka, as seen through inserts and the listener.
    bytes: AtomicU64,
    entries: AtomicU64,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        // Every critical section leaves the index consistent; a panic cannot tear it.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_gauges(&self) {
        metrics::gauge!(m::CACHE_BYTES).set(self.bytes.load(Ordering::Relaxed) as f64);
        metrics::gauge!(m::CACHE_ENTRIES).set(self.entries.load(Ordering::Relaxed) as f64);
    }
}

pub struct Store {
    cache: Cache<CacheKey, Arc<Entry>>,
    shared: Arc<Shared>,
    seq: AtomicU64,
    next_id: AtomicU64,
    max_size: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("max_size", &self.max_size)
            .field("weighted_size", &self.cache.weighted_size())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store holding at most `max_size` bytes of weight.
    pub fn new(max_size: u64) -> Self {
        let shared = Arc::new(Shared::default());
        let listener_shared = shared.clone();
        let cache = Cache::builder()
            .name("responses")
            .max_capacity(max_size)
            .weigher(|k: &CacheKey, v: &Arc<Entry>| -> u32 {
                u32::try_from(v.weight(k.as_str().len())).unwrap_or(u32::MAX)
            })
            .expire_after(KeepFor)
            .eviction_listener(move |k: Arc<CacheKey>, v: Arc<Entry>, cause| {
                let s = &listener_shared;
                let w = v.weight(k.as_str().len());
                let _ = s
                    .bytes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                        Some(b.saturating_sub(w))
                    });
                let _ = s
                    .entries
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1))
                    });
                let label = match cause {
                    RemovalCause::Replaced => None,
                    RemovalCause::Size => Some("size"),
                    RemovalCause::Expired => Some("expired"),
                    RemovalCause::Explicit => Some("invalidated"),
                };
                if let Some(cause) = label {
                    metrics::counter!(m::CACHE_EVICTIONS, "cause" => cause).increment(1);
                    s.index().remove_if(&k, v.id);
                }
                s.publish_gauges();
            })
            .build();
        Self {
            cache,
            shared,
            seq: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            max_size,
        }
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The largest entry weight stored: 1/16 of `max_size`.
    pub fn max_entry(&self) -> u64 {
        self.max_size / 16
    }

    /// A fresh entry id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The invalidation sequence number; note it before fetching, pass it to [`Self::insert`].
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The visible entry for `key`, fresh or not.
    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.get(key).await.filter(|e| e.is_armed())
    }

    /// Stores `entry` under `key` unless its path was invalidated after `since` or it is too
    /// large. Returns whether it was stored (moka may still decline to admit it).
    pub async fn insert(
        &self,
        key: CacheKey,
        entry: Arc<Entry>,
        since: u64,
    ) -> Result<(), Refused> {
        let weight = entry.weight(key.as_str().len());
        if weight > self.max_entry() {
            return Err(Refused::TooLarge);
        }
        let path = lower(key.path());
        {
            let mut index = self.shared.index();
            if index.invalidated_since(since, &path) {
                return Err(Refused::Invalidated);
            }
            index.add(&key, entry.id);
        }
        self.shared.bytes.fetch_add(weight, Ordering::Relaxed);
        self.shared.entries.fetch_add(1, Ordering::Relaxed);
        self.cache.insert(key.clone(), entry.clone()).await;
        let raced = {
            let index = self.shared.index();
            let raced = index.invalidated_since(since, &path);
            if !raced {
                entry.arm();
            }
            raced
        };
        if raced {
            // Not armed, so never served; drop it now rather than at expiry.
            self.cache.invalidate(key.as_str()).await;
            return Err(Refused::Invalidated);
        }
        self.shared.publish_gauges();
        Ok(())
    }

    /// Drops every entry whose path is one of `paths` (compared ASCII-case-insensitively),
    /// with any query and for any user. Returns how many entries were dropped.
    pub async fn invalidate_paths(&self, paths: &[String]) -> usize {
        let keys = {
            let mut index = self.shared.index();
            let mut keys = Vec::new();
            for p in paths {
                let p = lower(p);
                let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
                if let Some(found) = index.by_path.remove(p.as_str()) {
                    keys.extend(found.into_keys());
                }
                index.record(seq, Target::Path(p.into_boxed_str()));
            }
            keys
        };
        self.drop_keys(keys).await
    }

    /// Drops every entry whose path equals `prefix` or lies under it (segment-wise; `/`
    /// drops everything). Returns how many entries were dropped.
    pub async fn purge_prefix(&self, prefix: &str) -> usize {
        let prefix = lower(prefix);
        let keys = {
            let mut index = self.shared.index();
            let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
            let paths: Vec<Box<str>> = index
                .by_path
                .keys()
                .filter(|p| under_prefix(p, &prefix))
                .cloned()
                .collect();
            let mut keys = Vec::new();
            for p in paths {
                if let Some(found) = index.by_path.remove(&p) {
                    keys.extend(found.into_keys());
                }
            }
            index.record(seq, Target::Prefix(prefix.into_boxed_str()));
            keys
        };
        self.drop_keys(keys).await
    }

    async fn drop_keys(&self, keys: Vec<CacheKey>) -> usize {
        let mut dropped = 0;
        for k in keys {
            if self.cache.remove(k.as_str()).await.is_some() {
                dropped += 1;
            }
        }
        dropped
    }

    /// Runs moka's pending maintenance (expiry, eviction, listener calls).
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
        self.shared.publish_gauges();
    }

    /// moka's own weighted size (after maintenance).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Entries in moka (after maintenance).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Bytes held as tracked through inserts and evictions (the `gateway_cache_bytes` gauge).
    pub fn bytes_held(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Paths in the index (for tests: it must shrink with the store).
    pub fn indexed_paths(&self) -> usize {
        self.shared.index().by_path.len()
    }

    /// Keys in the index.
    pub fn indexed_keys(&self) -> usize {
        self.shared.index().by_path.values().map(HashMap::len).sum()
    }
}

/// Why [`Store::insert`] did not store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TooLarge,
    Invalidated,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    fn entry(store: &Store, body: usize, ttl: Duration) -> Arc<Entry> {
        Arc::new(Entry::new(
            StatusCode::OK,
            &HeaderMap::new(),
            Bytes::from(vec![b'x'; body]),
            ttl,
            ttl * 2,
            store.next_id(),
        ))
    }

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn stores_and_finds() {
        let s = Store::new(1 << 20);
        let since = s.seq();
        s.insert(CacheKey::new("/a/b?x=1"), entry(&s, 10, MIN), since)
            .await
            .unwrap();
        assert!(s.get("/a/b?x=1").await.is_some());
        assert!(s.get("/a/b").await.is_none());
    }

    #[tokio::test]
    async fn refuses_entries_over_a_sixteenth() {
        let s = Store::new(16 * 1024);
        let r = s
            .insert(CacheKey::new("/big"), entry(&s, 1024, MIN), s.seq())
            .await;
        assert_eq!(r, Err(Refused::TooLarge));
        assert!(s.get("/big").await.is_none());
    }

    #[tokio::test]
    async fn invalidation_drops_every_query_and_user_of_a_path_any_case() {
        let s = Store::new(1 << 20);
        for k in [
            "/api/v1/crm/people/u1",
            "/api/v1/crm/people/u1?fields=*",
            "/API/v1/crm/people/u1\0user:u1",
            "/api/v1/crm/people/u2",
        ] {
            s.insert(CacheKey::new(k), entry(&s, 10, MIN), s.seq())
                .await
                .unwrap();
        }
        let n = s
            .invalidate_paths(&["/api/v1/crm/people/U1".to_string()])
            .await;
        assert_eq!(n, 3);
        assert!(s.get("/api/v1/crm/people/u1?fields=*").await.is_none());
        assert!(s.get("/api/v1/crm/people/u2").await.is_some());
        s.run_pending_tasks().await;
        assert_eq!(s.indexed_keys(), 1);
    }

    #[tokio::test]
    async fn a_fetch_that_raced_an_invalidation_is_not_stored() {
        let s = Store::new(1 << 20);
        let since = s.seq();
        s.invalidate_paths(&["/a".to_string()]).await;
        let r = s
            .insert(CacheKey::new("/a?q=1"), entry(&s, 10, MIN), since)
            .await;
        assert_eq!(r, Err(Refused::Invalidated));
        assert!(s.get("/a?q=1").await.is_none());
        // Another path is unaffected.
        s.insert(CacheKey::new("/b"), entry(&s, 10, MIN), since)
            .await
            .unwrap();
        // A fetch started after the invalidation stores normally.
        s.insert(CacheKey::new("/a?q=1"), entry(&s, 10, MIN), s.seq())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn when_the_ring_forgot_the_fetch_is_not_stored() {
        let s = Store::new(1 << 20);
        let since = s.seq();
        for i in 0..RECENT + 1 {
            s.invalidate_paths(&[format!("/other/{i}")]).await;
        }
        let r = s
            .insert(CacheKey::new("/a"), entry(&s, 10, MIN), since)
            .await;
        assert_eq!(r, Err(Refused::Invalidated));
    }

    #[tokio::test]
    async fn purge_prefix_is_segment_wise() {
        let s = Store::new(1 << 20);
        for k in [
            "/api/v1/crm/people",
            "/api/v1/crm/people/u1?x=1",
            "/api/v1/crm/peoplex",
            "/api/v1/billing/plans",
        ] {
            s.insert(CacheKey::new(k), entry(&s, 10, MIN), s.seq())
                .await
                .unwrap();
        }
        assert_eq!(s.purge_prefix("/api/v1/crm/people").await, 2);
        assert!(s.get("/api/v1/crm/peoplex").await.is_some());
        assert_eq!(s.purge_prefix("/").await, 2);
        assert!(s.get("/api/v1/billing/plans").await.is_none());
    }

    #[tokio::test]
    async fn weighted_size_stays_within_max_size_and_the_index_follows() {
        let max = 64 * 1024;
        let s = Store::new(max);
        for i in 0..2000 {
            s.insert(
                CacheKey::new(&format!("/p/{i}")),
                entry(&s, 1024, MIN),
                s.seq(),
            )
            .await
            .unwrap();
        }
        s.run_pending_tasks().await;
        assert!(s.weighted_size() <= max, "{}", s.weighted_size());
        assert_eq!(s.bytes_held(), s.weighted_size());
        assert_eq!(s.indexed_keys() as u64, s.entry_count());
    }

    #[tokio::test]
    async fn entries_expire_after_keep() {
        let s = Store::new(1 << 20);
        let e = Arc::new(Entry::new(
            StatusCode::OK,
            &HeaderMap::new(),
            Bytes::from_static(b"x"),
            Duration::from_millis(10),
            Duration::from_millis(30),
            s.next_id(),
        ));
        s.insert(CacheKey::new("/e"), e, s.seq()).await.unwrap();
        assert!(s.get("/e").await.is_some());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(s.get("/e").await.is_none());
        // moka's timer wheel removes expired entries at about one-second granularity.
        for _ in 0..40 {
            s.run_pending_tasks().await;
            if s.indexed_keys() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(s.indexed_keys(), 0);
        assert_eq!(s.bytes_held(), 0);
    }

    #[test]
    fn prefixes() {
        assert!(under_prefix("/a/b", "/a"));
        assert!(under_prefix("/a", "/a"));
        assert!(!under_prefix("/ab", "/a"));
        assert!(under_prefix("/ab", "/"));
        assert!(under_prefix("/a/b", "/a/"));
    }
}
