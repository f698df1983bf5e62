//! The per-user limit (`[user_limit]`): a GCRA per caller (the token's `sub`, else the client
//! IP), counting every request that passed authentication, cache hits included.
//!
//! # Guarantees
//! - Over the limit: [`Limited`] with the wait until the next request would pass.
//! - The keyed state holds at most [`MAX_CALLERS`] callers of their own (≈ 146 bytes each,
//!   measured); while it is full, new callers share a few states ([`super::store`]).
//!   Housekeeping ([`UserLimiter::prune`]: governor's `retain_recent` + `shrink_to_fit`) drops
//!   every caller whose bucket has refilled, so the table holds only callers seen within about
//!   `burst * interval` (15 s by default) plus one [`PRUNE_EVERY`].

use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::{Quota, RateLimiter};
use http::HeaderValue;

use super::headers;
use super::key::UserKey;
use super::store::BoundedStore;
use crate::clock::TokioClock;
use crate::config::UserLimit;
use crate::telemetry::metrics as m;

/// Callers with a state of their own (see [`super::store`] for the ones beyond).
pub const MAX_CALLERS: usize = 32_768;

/// How often housekeeping prunes the keyed state.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// A request within the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// Requests that could be sent right now, after this one.
    pub remaining: u32,
    /// Until one more unit is available: at most one interval (this request used one).
    pub reset: Duration,
}

/// A request over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

/// foldhash, not SipHash, for the per-user states (hashed twice on every request): a key is a
/// verified token's `sub` or a peer address, and the seed is random per process.
type Hasher = foldhash::fast::RandomState;

type Keyed<C> = RateLimiter<UserKey, BoundedStore<UserKey, Hasher>, C, StateInformationMiddleware>;

pub struct UserLimiter<C: Clock = TokioClock> {
    limiter: Keyed<C>,
    clock: C,
    interval: Duration,
    burst: u32,
    policy: HeaderValue,
}

impl<C: Clock> std::fmt::Debug for UserLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserLimiter")
            .field("interval", &self.interval)
            .field("burst", &self.burst)
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl UserLimiter<TokioClock> {
    pub fn new(cfg: &UserLimit) -> Self {
        Self::with_clock(cfg, TokioClock::default())
    }
}

impl<C: Clock + Clone> UserLimiter<C> {
    pub fn with_clock(cfg: &UserLimit, clock: C) -> Self {
        Self::with_capacity(cfg, clock, MAX_CALLERS)
    }

    fn with_capacity(cfg: &UserLimit, clock: C, capacity: usize) -> Self {
        let interval = cfg.rate.interval().max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(cfg.burst))
            .allow_burst(cfg.burst);
        Self {
            limiter: RateLimiter::<_, _, _, NoOpMiddleware<C::Instant>>::new(
                quota,
                BoundedStore::new(capacity, Hasher::default()),
                clock.clone(),
            )
            .with_middleware::<StateInformationMiddleware>(),
            clock,
            interval,
            burst: cfg.burst.get(),
            policy: headers::policy(&cfg.rate),
        }
    }
}

impl<C: Clock> UserLimiter<C> {
    /// Counts one request of `key`.
    pub fn check(&self, key: &UserKey) -> Result<Allowed, Limited> {
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                // governor does not expose the TAT; the unit this request used comes back
                // within one interval, which is exact for a fresh caller.
                Ok(Allowed {
                    remaining: snapshot.remaining_burst_capacity(),
                    reset: self.interval,
                })
            }
            Err(not_until) => {
                metrics::counter!(m::USER_LIMITED).increment(1);
                Err(Limited {
                    retry_after: not_until.wait_time_from(self.clock.now()),
                })
            }
        }
    }

    /// `RateLimit-Policy` (constant).
    pub fn policy_header(&self) -> HeaderValue {
        self.policy.clone()
    }

    /// `RateLimit` for an outcome of [`check`](Self::check).
    pub fn state_header(&self, outcome: &Result<Allowed, Limited>) -> HeaderValue {
        match outcome {
            Ok(a) => headers::state(a.remaining, a.reset),
            Err(l) => headers::state(0, l.retry_after),
        }
    }

    /// Drops the state of every caller whose bucket has refilled.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        metrics::gauge!(m::USER_LIMIT_KEYS).set(self.limiter.len() as f64);
    }

    /// Callers currently tracked.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// Prunes every [`PRUNE_EVERY`] until the task is aborted.
pub async fn housekeeping(limiter: std::sync::Arc<UserLimiter>) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        limiter.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::parse_rate;
    use governor::clock::FakeRelativeClock;
    use std::num::NonZeroU32;

    fn limiter(rate: &str, burst: u32) -> (UserLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let cfg = UserLimit {
            rate: parse_rate(rate).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        };
        (UserLimiter::with_clock(&cfg, clock.clone()), clock)
    }

    fn sub(s: &str) -> UserKey {
        UserKey::Sub(s.into())
    }

    #[test]
    fn burst_then_refused_with_the_wait_then_refilled() {
        let (l, clock) = limiter("120/min", 3);
        let a = sub("a");
        assert_eq!(
            l.check(&a),
            Ok(Allowed {
                remaining: 2,
                reset: Duration::from_millis(500)
            })
        );
        assert_eq!(l.check(&a).unwrap().remaining, 1);
        assert_eq!(l.check(&a).unwrap().remaining, 0);
        let limited = l.check(&a).unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_millis(500));
        // others are unaffected
        assert!(l.check(&sub("b")).is_ok());
        assert!(l.check(&UserKey::Ip([127, 0, 0, 1].into())).is_ok());
        clock.advance(Duration::from_millis(500));
        assert_eq!(l.check(&a).unwrap().remaining, 0);
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            l.check(&a),
            Ok(Allowed {
                remaining: 2,
                reset: Duration::from_millis(500)
            })
        );
    }

    #[test]
    fn headers_follow_the_outcome() {
        let (l, _clock) = limiter("120/min", 2);
        assert_eq!(l.policy_header(), "\"user\";q=120;w=60");
        let first = l.check(&sub("a"));
        assert_eq!(l.state_header(&first), "\"user\";r=1;t=1");
        let _ = l.check(&sub("a"));
        let limited = l.check(&sub("a"));
        assert_eq!(l.state_header(&limited), "\"user\";r=0;t=1");
        // burst 1: nothing left, the next unit one interval away
        let (one, _) = limiter("1/min", 1);
        let r = one.check(&sub("x"));
        assert_eq!(one.state_header(&r), "\"user\";r=0;t=60");
    }

    #[test]
    fn a_full_table_shares_states_among_newcomers_and_keeps_the_tracked() {
        let clock = FakeRelativeClock::default();
        let cfg = UserLimit {
            rate: parse_rate("60/min").unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
        };
        let l = UserLimiter::with_capacity(&cfg, clock.clone(), 100);
        for i in 0..100 {
            assert!(l.check(&sub(&format!("u{i}"))).is_ok());
        }
        assert_eq!(l.len(), 100);
        // A flood of unique newcomers: the table does not grow, and since they share at most
        // SHARED_BUCKETS states, most of them are refused.
        let n = 10 * super::super::store::SHARED_BUCKETS;
        let refused = (0..n)
            .filter(|i| {
                l.check(&UserKey::Ip(std::net::Ipv6Addr::from(*i as u128).into()))
                    .is_err()
            })
            .count();
        assert_eq!(l.len(), 100);
        assert!(
            refused >= n - 2 * super::super::store::SHARED_BUCKETS,
            "{refused}"
        );
        // A tracked caller still has its own bucket: one unit left of its burst of 2.
        assert!(l.check(&sub("u7")).is_ok());
        assert!(l.check(&sub("u7")).is_err());
        // Once the table has refilled and been pruned, newcomers get their own state again.
        clock.advance(Duration::from_secs(5));
        l.prune();
        assert!(l.is_empty());
        let fresh = UserKey::Ip([10, 0, 0, 1].into());
        assert_eq!(l.check(&fresh).unwrap().remaining, 1);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn prune_forgets_callers_whose_bucket_refilled() {
        let (l, clock) = limiter("60/min", 5);
        for i in 0..1000 {
            let _ = l.check(&sub(&format!("u{i}")));
        }
        assert_eq!(l.len(), 1000);
        clock.advance(Duration::from_secs(2));
        let _ = l.check(&sub("recent"));
        l.prune();
        assert_eq!(l.len(), 1);
        clock.advance(Duration::from_secs(10));
        l.prune();
        assert!(l.is_empty());
    }
}
