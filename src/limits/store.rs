//! The per-user limit's keyed state: governor's GCRA over a table with a hard bound.
//!
//! # Guarantees
//! - At most `capacity` callers have a state of their own. A caller seen while the table is
//!   full shares one of [`SHARED_BUCKETS`] states, chosen by hashing its key: during a flood of
//!   unique callers (addresses, users) the newcomers are limited together, the callers already
//!   tracked keep their own state, and memory stays at `capacity` entries.
//! - [`BoundedStore::retain_recent`] drops every state whose bucket has refilled (governor's
//!   `retain_recent`), which frees room for new callers.
//! - Each state is one GCRA "theoretical arrival time" updated by compare-and-swap, exactly as
//!   governor's own in-memory state does (0 = never seen).

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;

/// States shared by the callers that arrive while the table is full.
pub const SHARED_BUCKETS: usize = 1024;

pub struct BoundedStore<K, S> {
    map: DashMap<K, AtomicU64, S>,
    /// Entries in `map`, kept beside it (`DashMap::len` locks every shard).
    len: AtomicUsize,
    capacity: usize,
    shared: Box<[AtomicU64]>,
    hasher: S,
}

impl<K: Hash + Eq + Clone, S: BuildHasher + Clone> BoundedStore<K, S> {
    pub fn new(capacity: usize, hasher: S) -> Self {
        Self {
            map: DashMap::with_hasher(hasher.clone()),
            len: AtomicUsize::new(0),
            capacity,
            shared: (0..SHARED_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            hasher,
        }
    }

    fn shared_for(&self, key: &K) -> &AtomicU64 {
        let i = (self.hasher.hash_one(key) as usize) % self.shared.len();
        &self.shared[i]
    }
}

/// governor's update of one state: `f` sees the previous arrival time (`None` when unset) and
/// returns the new one, retried until the swap wins or `f` refuses.
fn measure_and_replace_one<T, E>(
    state: &AtomicU64,
    f: impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
) -> Result<T, E> {
    let seen = |v: u64| (v != 0).then(|| Nanos::from(v));
    let mut prev = state.load(Ordering::Acquire);
    loop {
        let (result, next) = f(seen(prev))?;
        match state.compare_exchange_weak(prev, next.as_u64(), Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return Ok(result),
            Err(actual) => prev = actual,
        }
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher + Clone> StateStore for BoundedStore<K, S> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &Self::Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.map.get(key) {
            return measure_and_replace_one(&state, f);
        }
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            return measure_and_replace_one(self.shared_for(key), f);
        }
        let state = self.map.entry(key.clone()).or_insert_with(|| {
            self.len.fetch_add(1, Ordering::Relaxed);
            AtomicU64::new(0)
        });
        measure_and_replace_one(&state, f)
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher + Clone> ShrinkableKeyedStateStore<K>
    for BoundedStore<K, S>
{
    fn retain_recent(&self, drop_below: Nanos) {
        let below = drop_below.as_u64();
        self.map
            .retain(|_, state| state.load(Ordering::Relaxed) > below);
        for state in self.shared.iter() {
            let _ = state.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v != 0 && v <= below).then_some(0)
            });
        }
        self.len.store(self.map.len(), Ordering::Relaxed);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
