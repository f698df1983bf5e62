//! The response cache (docs/behaviour.md, "Response cache"): GETs of rules with `cache` on are answered from a
//! byte-bounded store, concurrent misses are coalesced into one upstream call, stale entries
//! cover refreshes and upstream failures, and writes invalidate.
//!
//! This module is domain logic and knows nothing of the request stack; the tower layer that
//! runs the per-request flow is [`crate::proxy::cache`].
//!
//! One concern per file:
//!
//! | file | concern |
//! |---|---|
//! | [`key`] | the cache key (rewritten path + sorted query, plus `sub` for user credentials) |
//! | [`entry`] | a buffered answer and its weight |
//! | [`control`] | may an answer be stored (`200`, `Cache-Control`, `Vary`, encoding) |
//! | [`buffer`] | reading a body up to a limit, streaming the rest back if it is larger |
//! | [`fetch`] | classifying an upstream result |
//! | [`store`] | moka (byte weigher, per-entry expiry, eviction listener) + path index |
//! | [`lock`] | the coalescing lock (leader / followers) |
//! | [`stale`] | freshness windows and stale answers; the budget's fallback marker |
//! | [`invalidate`] | what a write drops |
//! | [`status`] | `Cache-Status` values, access-line labels, metrics |
//!
//! The cache is built once from the startup `[cache].max_size` and survives reloads; the ttl
//! and stale windows are read from the request's configuration snapshot, so a reload changes
//! them for new entries.

pub mod buffer;
pub mod control;
pub mod entry;
pub mod fetch;
pub mod invalidate;
pub mod key;
pub mod lock;
pub mod stale;
pub mod status;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

pub use entry::CACHE_STATUS;

/// The cache's shared state: the store and the lock table.
#[derive(Debug)]
pub struct ResponseCache {
    store: store::Store,
    locks: lock::Locks,
}

impl ResponseCache {
    /// A cache holding at most `max_size` bytes (`[cache].max_size`).
    pub fn new(max_size: u64) -> Self {
        Self {
            store: store::Store::new(max_size),
            locks: lock::Locks::new(),
        }
    }

    pub fn store(&self) -> &store::Store {
        &self.store
    }

    pub fn locks(&self) -> &lock::Locks {
        &self.locks
    }

    /// Drops every entry at or under `prefix` (admin `POST /cache/purge?prefix=`); fetches in
    /// flight for those paths will not store. Returns how many entries were dropped.
    pub async fn purge(&self, prefix: &str) -> usize {
        self.store.purge_prefix(prefix).await
    }

    /// Runs the store's maintenance (expiry, eviction, gauges) every `every`, so memory is
    /// given back even when the cache is idle.
    pub fn spawn_maintenance(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cache) = weak.upgrade() else { break };
                cache.store.run_pending_tasks().await;
            }
        })
    }
}

#[cfg(test)]
mod tests;
