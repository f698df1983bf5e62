//! The in-memory data of one simulated Outseta domain.
//!
//! # Guarantees
//! - Plain data, no locking here: the simulator holds it in one `RwLock`, taken only for the
//!   few microseconds of a lookup, a render or a write, never across an `.await`.
//! - Bounded: the data set is the seed plus what writes add, and writes that add entities
//!   stop at [`MAX_CREATED`] (then the write is refused).
//! - Passwords live beside the entities, never in them, so no render can show one.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::model::{Entity, Kind};

/// Upper bound on entities created by writes (support cases) over the process lifetime.
pub const MAX_CREATED: usize = 10_000;

const UID_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An 8-character Uid derived from `tag` (stable across runs, so demo Uids do not change).
pub fn uid_for(tag: &str) -> String {
    let digest = Sha256::digest(tag.as_bytes());
    digest
        .iter()
        .take(8)
        .map(|b| char::from(UID_ALPHABET[usize::from(*b) % UID_ALPHABET.len()]))
        .collect()
}

/// Outseta's timestamp format: ISO 8601, seconds, no zone (`2021-01-20T05:24:53`).
pub fn timestamp(t: SystemTime) -> String {
    let mut s = humantime::format_rfc3339_seconds(t).to_string();
    if s.ends_with('Z') {
        s.pop();
    }
    s
}

pub fn now() -> String {
    timestamp(SystemTime::now())
}

/// `days` days from now (negative: in the past).
pub fn days_from_now(days: i64) -> String {
    let d = Duration::from_secs(days.unsigned_abs().saturating_mul(86_400));
    let now = SystemTime::now();
    let t = if days < 0 {
        now.checked_sub(d)
    } else {
        now.checked_add(d)
    };
    timestamp(t.unwrap_or(now))
}

#[derive(Debug, Default)]
pub struct Store {
    entities: HashMap<String, Entity>,
    order: HashMap<Kind, Vec<String>>,
    passwords: HashMap<String, String>,
    created: usize,
}

impl Store {
    /// Adds an entity (seed or create). A Uid already present is replaced in place.
    pub fn insert(&mut self, e: Entity) {
        debug_assert!(
            self.entities
                .get(&e.uid)
                .is_none_or(|old| old.kind == e.kind),
            "Uid {} reused across kinds",
            e.uid
        );
        if !self.entities.contains_key(&e.uid) {
            self.order.entry(e.kind).or_default().push(e.uid.clone());
        }
        self.entities.insert(e.uid.clone(), e);
    }

    pub fn get(&self, uid: &str) -> Option<&Entity> {
        self.entities.get(uid)
    }

    /// The entity with `uid` if it is of `kind`. Uids are compared exactly (Outseta's Uids
    /// are encoded ids, so case matters).
    pub fn get_kind(&self, kind: Kind, uid: &str) -> Option<&Entity> {
        self.entities.get(uid).filter(|e| e.kind == kind)
    }

    pub fn get_mut(&mut self, uid: &str) -> Option<&mut Entity> {
        self.entities.get_mut(uid)
    }

    /// All entities of `kind`, in insertion order.
    pub fn all(&self, kind: Kind) -> Vec<&Entity> {
        self.order
            .get(&kind)
            .map(|uids| uids.iter().filter_map(|u| self.entities.get(u)).collect())
            .unwrap_or_default()
    }

    /// The person with this email (compared case-insensitively, as Outseta logs people in).
    pub fn person_by_email(&self, email: &str) -> Option<&Entity> {
        self.all(Kind::Person).into_iter().find(|p| {
            p.str("Email")
                .is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))
        })
    }

    pub fn set_password(&mut self, person_uid: &str, password: &str) {
        self.passwords
            .insert(person_uid.to_owned(), password.to_owned());
    }

    /// The current password of a person (the simulator shows seeded credentials).
    pub fn password(&self, person_uid: &str) -> Option<&str> {
        self.passwords.get(person_uid).map(String::as_str)
    }

    pub fn password_matches(&self, person_uid: &str, password: &str) -> bool {
        self.passwords.get(person_uid).is_some_and(|p| {
            aws_lc_rs::constant_time::verify_slices_are_equal(p.as_bytes(), password.as_bytes())
                .is_ok()
        })
    }

    /// A fresh Uid for a created entity, or `None` once [`MAX_CREATED`] is reached.
    pub fn next_created_uid(&mut self, kind: Kind) -> Option<String> {
        if self.created >= MAX_CREATED {
            return None;
        }
        self.created += 1;
        let mut n = self.created;
        loop {
            let uid = uid_for(&format!("created:{}:{n}", kind.name()));
            if !self.entities.contains_key(&uid) {
                return Some(uid);
            }
            n += MAX_CREATED;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_eight_alphanumerics_and_stable() {
        let a = uid_for("person:alice");
        assert_eq!(a.len(), 8);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(a, uid_for("person:alice"));
        assert_ne!(a, uid_for("person:bob"));
    }

    #[test]
    fn timestamps_have_no_zone() {
        let t = timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(1_611_120_293));
        assert_eq!(t, "2021-01-20T05:24:53");
    }

    #[test]
    fn created_entities_are_capped() {
        let mut s = Store {
            created: MAX_CREATED - 1,
            ..Store::default()
        };
        assert!(s.next_created_uid(Kind::Case).is_some());
        assert!(s.next_created_uid(Kind::Case).is_none());
    }
}
