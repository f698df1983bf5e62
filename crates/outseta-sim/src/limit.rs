//! The per-API-key rate limit: a GCRA (governor) at `rate` requests per second with a burst
//! of `rate`, answered with 429 by the caller.
//!
//! # Guarantees
//! - Only requests carrying the simulator's valid API key reach the limiter, so its key map
//!   holds at most one entry per configured key.
//! - `rate = 0` disables the limit.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

#[derive(Debug)]
pub struct KeyLimiter {
    inner: Option<DefaultKeyedRateLimiter<String>>,
}

impl KeyLimiter {
    pub fn new(rate: u32) -> Self {
        let inner =
            NonZeroU32::new(rate).map(|r| RateLimiter::keyed(Quota::per_second(r).allow_burst(r)));
        Self { inner }
    }

    /// Takes one permit for `key`; `false` means the request is over the limit.
    pub fn check(&self, key: &str) -> bool {
        match &self.inner {
            Some(l) => l.check_key(&key.to_owned()).is_ok(),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_rate_then_refuses() {
        let l = KeyLimiter::new(4);
        let passed = (0..20).filter(|_| l.check("k")).count();
        assert!((4..=5).contains(&passed), "passed {passed}");
        assert!(KeyLimiter::new(4).check("other"));
        let off = KeyLimiter::new(0);
        assert!((0..100).all(|_| off.check("k")));
    }
}
