//! The waiting room: a bounded queue that serves users in turn.
//!
//! Deficit round-robin with every request costing one permit and a quantum of one, which is
//! plain round-robin over users with a FIFO lane per user: each visit to a user serves
//! exactly one of their requests, then the user goes to the back of the ring. A user who
//! arrives goes to the back of the ring too, so one user's backlog delays another's single
//! request by at most one rotation (one permit per waiting user).
//!
//! The queue is a data structure only; [`super::Budget`] decides when a permit is due and
//! wakes the popped waiter.
//!
//! # Bounds
//! At most `capacity` entries in total and `per_user` per user; the lane map and the ring
//! hold only users with at least one entry.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Why an entry was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The whole queue is at `capacity`.
    Queue,
    /// This user already has `per_user` entries waiting.
    User,
}

#[derive(Debug)]
pub struct FairQueue<K, V> {
    /// Users with waiting entries, in service order.
    ring: VecDeque<K>,
    lanes: HashMap<K, VecDeque<(u64, V)>>,
    len: usize,
    capacity: usize,
    per_user: usize,
    next_id: u64,
}

impl<K: Hash + Eq + Clone, V> FairQueue<K, V> {
    pub fn new(capacity: usize, per_user: usize) -> Self {
        Self {
            ring: VecDeque::new(),
            lanes: HashMap::new(),
            len: 0,
            capacity: capacity.max(1),
            per_user: per_user.max(1),
            next_id: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Users with at least one entry.
    pub fn users(&self) -> usize {
        self.ring.len()
    }

    /// The 1-based place in service order that an entry pushed now for `user` would have,
    /// if nobody else arrived: `user`'s entry comes in round `b` (its backlog), and every
    /// other user is served `min(backlog, b + 1)` times before it if ahead of it in the ring,
    /// `min(backlog, b)` times if behind.
    pub fn position(&self, user: &K) -> usize {
        let b = self.lanes.get(user).map_or(0, VecDeque::len);
        if b == 0 {
            return self.ring.len() + 1;
        }
        let mut pos = b + 1;
        let mut ahead = true;
        for k in &self.ring {
            if k == user {
                ahead = false;
                continue;
            }
            let other = self.lanes.get(k).map_or(0, VecDeque::len);
            pos += other.min(if ahead { b + 1 } else { b });
        }
        pos
    }

    /// Queues `value` for `user`; returns its id (for [`remove`](Self::remove)).
    pub fn push(&mut self, user: K, value: V) -> Result<u64, Full> {
        if self.len >= self.capacity {
            return Err(Full::Queue);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        match self.lanes.get_mut(&user) {
            Some(lane) if lane.len() >= self.per_user => return Err(Full::User),
            Some(lane) => lane.push_back((id, value)),
            None => {
                self.lanes
                    .insert(user.clone(), VecDeque::from([(id, value)]));
                self.ring.push_back(user);
            }
        }
        self.len += 1;
        Ok(id)
    }

    /// The next entry in turn: the front user's oldest; that user moves to the back.
    pub fn pop(&mut self) -> Option<(K, V)> {
        while let Some(user) = self.ring.pop_front() {
            let Some(lane) = self.lanes.get_mut(&user) else {
                continue;
            };
            let Some((_, value)) = lane.pop_front() else {
                self.lanes.remove(&user);
                continue;
            };
            self.len -= 1;
            if lane.is_empty() {
                self.lanes.remove(&user);
            } else {
                self.ring.push_back(user.clone());
            }
            return Some((user, value));
        }
        None
    }

    /// Takes out entry `id` of `user` (a waiter that gave up); `None` if already popped.
    pub fn remove(&mut self, user: &K, id: u64) -> Option<V> {
        let lane = self.lanes.get_mut(user)?;
        let at = lane.iter().position(|(i, _)| *i == id)?;
        let (_, value) = lane.remove(at)?;
        self.len -= 1;
        if lane.is_empty() {
            self.lanes.remove(user);
            self.ring.retain(|k| k != user);
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut FairQueue<&'static str, u32>) -> Vec<(&'static str, u32)> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn rotates_between_users() {
        let mut q = FairQueue::new(100, 100);
        for i in 0..5 {
            q.push("a", i).unwrap();
        }
        q.push("b", 0).unwrap();
        q.push("b", 1).unwrap();
        q.push("c", 0).unwrap();
        let order: Vec<_> = drain(&mut q);
        assert_eq!(
            order,
            [
                ("a", 0),
                ("b", 0),
                ("c", 0),
                ("a", 1),
                ("b", 1),
                ("a", 2),
                ("a", 3),
                ("a", 4)
            ]
        );
        assert!(q.is_empty());
        assert_eq!(q.users(), 0);
    }

    #[test]
    fn a_newcomer_waits_at_most_one_rotation() {
        let mut q = FairQueue::new(1000, 1000);
        for i in 0..100 {
            q.push("heavy", i).unwrap();
        }
        for i in 0..10 {
            q.push("other", i).unwrap();
        }
        // serve a few, then a new user arrives
        for _ in 0..7 {
            q.pop();
        }
        assert_eq!(q.position(&"new"), 3);
        q.push("new", 0).unwrap();
        let next: Vec<_> = (0..3).map(|_| q.pop().unwrap().0).collect();
        assert!(next.contains(&"new"), "{next:?}");
    }

    #[test]
    fn position_predicts_the_service_order() {
        let mut q = FairQueue::new(1000, 1000);
        let pushes = [("a", 4), ("b", 1), ("c", 3), ("a", 2), ("d", 1), ("b", 5)];
        let mut n = 0u32;
        for (user, count) in pushes {
            for _ in 0..count {
                let predicted = q.position(&user);
                q.push(user, n).unwrap();
                // simulate: the predicted place of the entry just pushed
                let mut probe = FairQueue::new(1000, 1000);
                std::mem::swap(&mut probe, &mut q);
                let order = drain(&mut probe);
                let actual = order.iter().position(|(_, v)| *v == n).unwrap() + 1;
                assert_eq!(predicted, actual, "entry {n} of {user}");
                for (u, v) in order {
                    q.push(u, v).unwrap();
                }
                n += 1;
            }
        }
    }

    #[test]
    fn bounded_in_total_and_per_user() {
        let mut q = FairQueue::new(5, 2);
        q.push("a", 0).unwrap();
        q.push("a", 1).unwrap();
        assert_eq!(q.push("a", 2), Err(Full::User));
        q.push("b", 0).unwrap();
        q.push("c", 0).unwrap();
        q.push("d", 0).unwrap();
        assert_eq!(q.push("e", 0), Err(Full::Queue));
        assert_eq!(q.len(), 5);
        q.pop();
        assert!(q.push("e", 0).is_ok());
    }

    #[test]
    fn remove_takes_out_one_waiter_and_forgets_empty_users() {
        let mut q = FairQueue::new(10, 10);
        let a0 = q.push("a", 0).unwrap();
        let b0 = q.push("b", 0).unwrap();
        let a1 = q.push("a", 1).unwrap();
        assert_eq!(q.remove(&"a", a0), Some(0));
        assert_eq!(q.remove(&"a", a0), None);
        assert_eq!(q.remove(&"b", b0), Some(0));
        assert_eq!(q.users(), 1);
        assert_eq!(q.pop(), Some(("a", 1)));
        assert_eq!(q.remove(&"a", a1), None);
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }
}
