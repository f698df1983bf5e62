//! The GCRA maths of the shared budget, in one place: the Redis script
//! ([`super::redis::SCRIPT`]) is a line-by-line transcription of [`Gcra::reserve`] and
//! [`Gcra::pause`], and the local limiter ([`super::local`]) is governor configured with the
//! same interval and tolerance.
//!
//! GCRA keeps one number per budget, the *theoretical arrival time* (TAT). A request may go
//! at `max(now, TAT - tolerance)`; taking it moves TAT to `max(TAT, now) + interval`. With
//! `tolerance = (burst - 1) * interval` this is a token bucket of `burst` tokens refilled at
//! one per `interval`, without a refill timer.
//!
//! # The jitter guard
//! Outseta meters requests when they *arrive*. If the gateway sent a burst on fresh
//! connections (TCP + TLS handshakes: slow) and the next request on a pooled one (fast), the
//! next request would arrive earlier, relative to the burst, than the gateway's own GCRA
//! allowed — and a schedule with zero slack becomes a 429. So the budget keeps
//! [`JITTER_GUARD`] of the tolerance in reserve: it tolerates that much difference in
//! delivery delay between any two requests, costs nothing in long-run rate, and trims the
//! burst by at most the requests that fit in the guard (`burst = 4` at 4/s: three at once,
//! then one every 250 ms).

use std::num::NonZeroU32;
use std::time::Duration;

/// Difference in delivery delay tolerated between two upstream calls (see the module docs):
/// about a TLS handshake on a new connection, on the same continent.
pub const JITTER_GUARD: Duration = Duration::from_millis(250);

/// Interval and tolerance of one GCRA, in microseconds (the Redis script's unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Emission interval `T`: one request per `interval` in the long run.
    pub interval_us: u64,
    /// How far TAT may be ahead of now for a request to go now: `(burst - 1) * T - guard`.
    pub tolerance_us: u64,
}

/// What [`Gcra::reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// A slot was taken; it may be used `wait_us` from now.
    pub reserved: bool,
    /// Until the slot (reserved) or until the first free one (not reserved).
    pub wait_us: u64,
    /// The TAT to store (unchanged when nothing was reserved).
    pub tat_us: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Gcra {
    /// `interval` between requests, `burst` at once, less `guard` of tolerance (never below
    /// zero: with `burst = 1` there is no tolerance to give up).
    pub fn new(interval: Duration, burst: NonZeroU32, guard: Duration) -> Self {
        let interval_us = micros(interval).max(1);
        let full = interval_us.saturating_mul(u64::from(burst.get() - 1));
        Self {
            interval_us,
            tolerance_us: full.saturating_sub(micros(guard)),
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }

    pub fn tolerance(&self) -> Duration {
        Duration::from_micros(self.tolerance_us)
    }

    /// One reservation at `now` against the stored `tat` (`None`: never used or expired).
    /// A slot at most `horizon_us` away is reserved; a later one is only reported.
    pub fn reserve(&self, tat: Option<u64>, now: u64, horizon_us: u64) -> Outcome {
        let tat = tat.unwrap_or(now).max(now);
        let wait_us = tat.saturating_sub(self.tolerance_us).saturating_sub(now);
        if wait_us > horizon_us {
            return Outcome {
                reserved: false,
                wait_us,
                tat_us: tat,
            };
        }
        Outcome {
            reserved: true,
            wait_us,
            tat_us: tat.saturating_add(self.interval_us),
        }
    }

    /// Pushes the budget back so that nothing goes for `pause_us` from `now`; afterwards
    /// requests resume one per interval (no burst right after an upstream 429).
    pub fn pause(&self, tat: Option<u64>, now: u64, pause_us: u64) -> u64 {
        let floor = now
            .saturating_add(pause_us)
            .saturating_add(self.tolerance_us);
        tat.unwrap_or(now).max(floor)
    }

    /// The most requests that can start within any closed window of `window`:
    /// `1 + floor((window + tolerance) / interval)`.
    pub fn max_in_window(&self, window: Duration) -> u64 {
        1 + (micros(window).saturating_add(self.tolerance_us)) / self.interval_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use governor::{Quota, RateLimiter};
    use proptest::prelude::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    const MS: u64 = 1_000;
    const GUARD: Duration = Duration::from_millis(50);

    #[test]
    fn a_burst_then_one_per_interval() {
        let g = Gcra::new(Duration::from_millis(250), nz(4), Duration::ZERO);
        assert_eq!(g.tolerance_us, 750 * MS);
        let mut tat = None;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let o = g.reserve(tat, 0, u64::MAX);
            assert!(o.reserved);
            tat = Some(o.tat_us);
            waits.push(o.wait_us / MS);
        }
        // Four at once, then reservations 250 ms apart, all decided at t = 0.
        assert_eq!(waits, [0, 0, 0, 0, 250, 500, 750]);
    }

    #[test]
    fn the_guard_trims_the_burst_not_the_rate() {
        let g = Gcra::new(Duration::from_millis(250), nz(4), GUARD);
        assert_eq!(g.tolerance_us, 700 * MS);
        let mut tat = None;
        let waits: Vec<u64> = (0..6)
            .map(|_| {
                let o = g.reserve(tat, 0, u64::MAX);
                tat = Some(o.tat_us);
                o.wait_us / MS
            })
            .collect();
        assert_eq!(waits, [0, 0, 0, 50, 300, 550]);
        // burst 1 has no tolerance to give up
        assert_eq!(
            Gcra::new(Duration::from_millis(250), nz(1), GUARD).tolerance_us,
            0
        );
        // the production guard at the defaults: three at once, then 4/s
        let g = Gcra::new(Duration::from_millis(250), nz(4), JITTER_GUARD);
        assert_eq!(g.tolerance_us, 500 * MS);
    }

    #[test]
    fn horizon_reports_without_reserving() {
        let g = Gcra::new(Duration::from_millis(100), nz(1), Duration::ZERO);
        let first = g.reserve(None, 0, 0);
        assert!(first.reserved);
        let second = g.reserve(Some(first.tat_us), 10 * MS, 0);
        assert_eq!(
            second,
            Outcome {
                reserved: false,
                wait_us: 90 * MS,
                tat_us: first.tat_us
            }
        );
        let third = g.reserve(Some(first.tat_us), 10 * MS, 90 * MS);
        assert!(third.reserved);
        assert_eq!(third.tat_us, 200 * MS);
    }

    #[test]
    fn an_idle_budget_refills_to_the_burst() {
        let g = Gcra::new(Duration::from_millis(250), nz(4), Duration::ZERO);
        let mut tat = None;
        for _ in 0..4 {
            tat = Some(g.reserve(tat, 0, u64::MAX).tat_us);
        }
        // Ten seconds later the stale TAT is in the past: a full burst again.
        let now = 10_000 * MS;
        for _ in 0..4 {
            let o = g.reserve(tat, now, 0);
            assert!(o.reserved && o.wait_us == 0);
            tat = Some(o.tat_us);
        }
        assert!(!g.reserve(tat, now, 0).reserved);
    }

    #[test]
    fn pause_holds_everything_then_resumes_without_a_burst() {
        let g = Gcra::new(Duration::from_millis(250), nz(4), Duration::ZERO);
        let tat = g.pause(None, 0, 2_000 * MS);
        let first = g.reserve(Some(tat), 0, u64::MAX);
        assert_eq!(first.wait_us, 2_000 * MS);
        let second = g.reserve(Some(first.tat_us), 0, u64::MAX);
        assert_eq!(second.wait_us, 2_250 * MS);
        // A pause shorter than the backlog changes nothing.
        assert_eq!(g.pause(Some(second.tat_us), 0, 1), second.tat_us);
    }

    #[test]
    fn window_bound() {
        let g = Gcra::new(Duration::from_millis(250), nz(4), GUARD);
        // 1 + (1000 + 700) / 250 = 7 <= rate + burst = 8
        assert_eq!(g.max_in_window(Duration::from_secs(1)), 7);
    }

    proptest! {
        /// Without a guard, the maths agrees with governor's GCRA on any arrival sequence.
        #[test]
        fn agrees_with_governor(
            burst in 1u32..6,
            interval_ms in 1u64..400,
            gaps in proptest::collection::vec(0u64..500, 1..80),
        ) {
            let interval = Duration::from_millis(interval_ms);
            let clock = FakeRelativeClock::default();
            let quota = Quota::with_period(interval).unwrap().allow_burst(nz(burst));
            let governor = RateLimiter::direct_with_clock(quota, clock.clone());
            let g = Gcra::new(interval, nz(burst), Duration::ZERO);
            let (mut tat, mut now) = (None, 0u64);
            for gap in gaps {
                clock.advance(Duration::from_millis(gap));
                now += gap * MS;
                let ours = g.reserve(tat, now, 0);
                if ours.reserved {
                    tat = Some(ours.tat_us);
                }
                prop_assert_eq!(ours.reserved, governor.check().is_ok());
            }
        }

        /// Whatever the demand, the slots reserved never exceed the window bound.
        #[test]
        fn reserved_slots_respect_the_window_bound(
            burst in 1u32..8,
            interval_ms in 10u64..300,
            gaps in proptest::collection::vec(0u64..200, 1..120),
        ) {
            let g = Gcra::new(Duration::from_millis(interval_ms), nz(burst), JITTER_GUARD);
            let (mut tat, mut now, mut slots) = (None, 0u64, Vec::new());
            for gap in gaps {
                now += gap * MS;
                let o = g.reserve(tat, now, 5_000 * MS);
                if o.reserved {
                    tat = Some(o.tat_us);
                    slots.push(now + o.wait_us);
                }
            }
            slots.sort_unstable();
            let window = 1_000 * MS;
            let bound = g.max_in_window(Duration::from_secs(1)) as usize;
            for (i, start) in slots.iter().enumerate() {
                let n = slots[i..].iter().take_while(|s| **s <= start + window).count();
                prop_assert!(n <= bound, "{} slots in 1 s, bound {}", n, bound);
            }
        }
    }
}
