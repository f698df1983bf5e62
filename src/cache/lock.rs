//! The coalescing lock: concurrent misses for one key make one upstream call.
//!
//! Modelled on pingora's cache lock (`pingora-cache/src/lock.rs`): the first request for a key
//! becomes the *leader* and fetches; the others become *followers* and wait on a
//! `tokio::sync::watch` channel. They are woken all at once when the leader publishes — never
//! polled — so a stampede finishes right after the leader's upstream call.
//!
//! - The leader holds a [`Leader`] guard. [`Leader::finish`] hands followers the answer;
//!   [`Leader::fail`] tells them the call failed; [`Leader::give_up`] tells them the answer
//!   cannot be shared (too large to buffer) so they fetch on their own. Dropping the guard
//!   without any of these (the leader's request was cancelled, or it panicked) releases the
//!   followers as [`State::Released`]: the key is not poisoned, they compete again and one
//!   becomes the new leader.
//! - The slot is removed from the table *before* followers are woken, so a woken follower that
//!   locks again finds no stale slot.
//! - Followers bound their own wait (their request deadline): a stuck leader cannot hold
//!   them past it.
//! - The table only holds keys with a leader in flight, so it is bounded by the number of
//!   requests in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use std::time::Instant;

use tokio::sync::watch;

use super::entry::Entry;
use super::key::CacheKey;
use super::status::StaleReason;

/// What followers see.
#[derive(Debug, Clone)]
pub enum State {
    /// The leader is fetching.
    Pending,
    /// The leader's answer (stored or not), to be served as `collapsed`.
    Done(Arc<Entry>),
    /// The leader's call failed. `retry_after` is set when the shared budget refused it.
    Failed {
        reason: StaleReason,
        retry_after: Option<Duration>,
    },
    /// The answer cannot be shared: fetch independently.
    GaveUp,
    /// The leader went away without an answer: compete to lead again.
    Released,
}

#[derive(Debug)]
struct Slot {
    tx: watch::Sender<State>,
}

#[derive(Debug, Default)]
struct Table {
    slots: Mutex<HashMap<CacheKey, Arc<Slot>>>,
}

/// The lock table. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Locks {
    table: Arc<Table>,
}

/// The result of [`Locks::lock`].
#[derive(Debug)]
pub enum Lock {
    Leader(Leader),
    Follower(Follower),
}

impl Locks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Becomes the leader for `key`, or a follower of the current one.
    pub fn lock(&self, key: &str) -> Lock {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(key) {
            // A slot in the table is always pending (it is removed before it is resolved).
            return Lock::Follower(Follower {
                rx: slot.tx.subscribe(),
            });
        }
        Lock::Leader(self.insert(&mut slots, key))
    }

    /// Becomes the leader for `key` only if nobody is fetching it (background refresh).
    pub fn try_lead(&self, key: &str) -> Option<Leader> {
        let mut slots = self.slots();
        if slots.contains_key(key) {
            return None;
        }
        Some(self.insert(&mut slots, key))
    }

    /// Keys with a leader in flight.
    pub fn in_flight(&self) -> usize {
        self.slots().len()
    }

    fn insert(&self, slots: &mut HashMap<CacheKey, Arc<Slot>>, key: &str) -> Leader {
        let key = CacheKey::new(key);
        let (tx, _) = watch::channel(State::Pending);
        let slot = Arc::new(Slot { tx });
        slots.insert(key.clone(), slot.clone());
        Leader {
            table: self.table.clone(),
            key,
            slot,
            resolved: false,
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<Slot>>> {
        // The map stays consistent even if a holder panicked: every operation is one call.
        self.table
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The right (and duty) to fetch a key. Resolve it, or drop it to release the followers.
#[derive(Debug)]
pub struct Leader {
    table: Arc<Table>,
    key: CacheKey,
    slot: Arc<Slot>,
    resolved: bool,
}

impl Leader {
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// Hands `entry` to the followers.
    pub fn finish(mut self, entry: Arc<Entry>) {
        self.resolve(State::Done(entry));
    }

    /// The upstream call failed.
    pub fn fail(mut self, reason: StaleReason, retry_after: Option<Duration>) {
        self.resolve(State::Failed {
            reason,
            retry_after,
        });
    }

    /// The answer cannot be shared; followers fetch on their own.
    pub fn give_up(mut self) {
        self.resolve(State::GaveUp);
    }

    /// Followers waiting right now (for tests and metrics).
    pub fn followers(&self) -> usize {
        self.slot.tx.receiver_count()
    }

    fn resolve(&mut self, state: State) {
        if self.resolved {
            return;
        }
        self.resolved = true;
        {
            let mut slots = self
                .table
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if slots
                .get(&self.key)
                .is_some_and(|s| Arc::ptr_eq(s, &self.slot))
            {
                slots.remove(&self.key);
            }
        }
        // `send_replace` stores the value even with no receiver, and wakes every receiver.
        self.slot.tx.send_replace(state);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.resolve(State::Released);
    }
}

/// A request waiting for a leader.
#[derive(Debug)]
pub struct Follower {
    rx: watch::Receiver<State>,
}

impl Follower {
    /// Waits for the leader's outcome until `deadline`; `None` if the deadline passed first.
    pub async fn wait(mut self, deadline: Instant) -> Option<State> {
        let waited = tokio::time::timeout_at(
            deadline.into(),
            self.rx.wait_for(|s| !matches!(s, State::Pending)),
        )
        .await;
        match waited {
            Err(_) => None,
            Ok(Ok(state)) => Some(state.clone()),
            // The sender is gone without a final state: cannot happen (the guard resolves on
            // drop), but treat it as a release.
            Ok(Err(_)) => Some(State::Released),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    fn entry() -> Arc<Entry> {
        Arc::new(Entry::new(
            StatusCode::OK,
            &HeaderMap::new(),
            Bytes::from_static(b"x"),
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
        ))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn leader(l: Lock) -> Leader {
        match l {
            Lock::Leader(g) => g,
            Lock::Follower(_) => panic!("expected to lead"),
        }
    }

    fn follower(l: Lock) -> Follower {
        match l {
            Lock::Follower(f) => f,
            Lock::Leader(_) => panic!("expected to follow"),
        }
    }

    #[tokio::test]
    async fn followers_get_the_leaders_answer() {
        let locks = Locks::new();
        let lead = leader(locks.lock("k"));
        let waiters: Vec<_> = (0..50)
            .map(|_| tokio::spawn(follower(locks.lock("k")).wait(soon())))
            .collect();
        assert_eq!(lead.followers(), 50);
        tokio::time::sleep(Duration::from_millis(20)).await; // all are parked
        let finished = Instant::now();
        lead.finish(entry());
        for w in waiters {
            assert!(matches!(w.await.unwrap(), Some(State::Done(_))));
        }
        // Woken by the leader, not by a poll interval.
        assert!(finished.elapsed() < Duration::from_millis(250));
        assert_eq!(locks.in_flight(), 0);
        // The next request leads again (the store answers it in practice).
        assert!(matches!(locks.lock("k"), Lock::Leader(_)));
    }

    #[tokio::test]
    async fn dropped_leader_hands_over_to_a_new_one() {
        let locks = Locks::new();
        let lead = leader(locks.lock("k"));
        let f1 = follower(locks.lock("k"));
        let f2 = follower(locks.lock("k"));
        let w1 = tokio::spawn(f1.wait(soon()));
        let w2 = tokio::spawn(f2.wait(soon()));
        drop(lead); // cancelled mid-flight
        assert!(matches!(w1.await.unwrap(), Some(State::Released)));
        assert!(matches!(w2.await.unwrap(), Some(State::Released)));
        // Both compete again: exactly one leads, the other follows it.
        let a = locks.lock("k");
        let b = locks.lock("k");
        assert!(matches!(a, Lock::Leader(_)));
        let f = follower(b);
        let w = tokio::spawn(f.wait(soon()));
        leader(a).finish(entry());
        assert!(matches!(w.await.unwrap(), Some(State::Done(_))));
    }

    #[tokio::test]
    async fn failure_and_give_up_are_published() {
        let locks = Locks::new();
        let lead = leader(locks.lock("k"));
        let w = tokio::spawn(follower(locks.lock("k")).wait(soon()));
        lead.fail(StaleReason::UpstreamBusy, Some(Duration::from_secs(2)));
        assert!(matches!(
            w.await.unwrap(),
            Some(State::Failed {
                reason: StaleReason::UpstreamBusy,
                retry_after: Some(_)
            })
        ));
        let lead = leader(locks.lock("k"));
        let w = tokio::spawn(follower(locks.lock("k")).wait(soon()));
        lead.give_up();
        assert!(matches!(w.await.unwrap(), Some(State::GaveUp)));
    }

    #[tokio::test]
    async fn a_stuck_leader_cannot_hold_a_follower_past_its_deadline() {
        let locks = Locks::new();
        let _stuck = leader(locks.lock("k"));
        let start = Instant::now();
        let r = follower(locks.lock("k"))
            .wait(start + Duration::from_millis(50))
            .await;
        assert!(r.is_none());
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn try_lead_only_when_idle() {
        let locks = Locks::new();
        let lead = locks.try_lead("k").expect("idle");
        assert!(locks.try_lead("k").is_none());
        assert!(matches!(locks.lock("other"), Lock::Leader(_)));
        drop(lead);
        assert!(locks.try_lead("k").is_some());
    }

    #[tokio::test]
    async fn a_late_follower_of_a_resolved_slot_sees_the_answer() {
        // A follower that subscribed just before the leader resolved still gets the value.
        let locks = Locks::new();
        let lead = leader(locks.lock("k"));
        let f = follower(locks.lock("k"));
        lead.finish(entry());
        assert!(matches!(f.wait(soon()).await, Some(State::Done(_))));
    }
}
