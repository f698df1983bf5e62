//! The in-process GCRA: a governor direct limiter configured from a [`Gcra`].
//!
//! governor derives its tolerance from the burst (`(burst - 1) * interval`), which cannot
//! express the jitter guard. So a permit is [`SUBCELLS`] governor cells of `interval /
//! SUBCELLS` each and the bucket holds `SUBCELLS + tolerance / cell` cells: taking a permit
//! (`check_n(SUBCELLS)`) then obeys exactly `interval` and `tolerance`, to one cell
//! (a thousandth of the interval), rounded towards fewer requests.
//!
//! The clock is [`TokioClock`], so the budget's limiter, sleeps and deadlines share one time
//! source (and unit tests can run on tokio's paused clock).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::gcra::Gcra;

/// governor cells per permit.
pub const SUBCELLS: u32 = 1_000;

pub use crate::clock::TokioClock;

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One GCRA in memory.
pub struct LocalGcra<C: Clock = TokioClock> {
    limiter: Direct<C>,
    per_permit: NonZeroU32,
    gcra: Gcra,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for LocalGcra<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGcra")
            .field("gcra", &self.gcra)
            .finish_non_exhaustive()
    }
}

impl LocalGcra<TokioClock> {
    pub fn new(gcra: Gcra) -> Self {
        Self::with_clock(gcra, TokioClock::default())
    }
}

impl<C: Clock + Clone> LocalGcra<C> {
    pub fn with_clock(gcra: Gcra, clock: C) -> Self {
        let (quota, per_permit) = quota(&gcra);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            per_permit,
            gcra,
            clock,
        }
    }
}

/// The sub-cell quota for `gcra`, or a plain one (one cell per permit, the tolerance rounded
/// down to whole intervals) when the sub-cell numbers would not fit governor's types.
fn quota(gcra: &Gcra) -> (Quota, NonZeroU32) {
    let interval_ns = gcra.interval_us.saturating_mul(1_000);
    let cell_ns = interval_ns.div_ceil(u64::from(SUBCELLS));
    let cells = u64::from(SUBCELLS) + gcra.tolerance_us.saturating_mul(1_000) / cell_ns.max(1);
    if let (Ok(cells), Some(q)) = (
        u32::try_from(cells),
        Quota::with_period(Duration::from_nanos(cell_ns)),
    ) && let (Some(cells), Some(per)) = (NonZeroU32::new(cells), NonZeroU32::new(SUBCELLS))
    {
        return (q.allow_burst(cells), per);
    }
    let burst = 1 + gcra.tolerance_us / gcra.interval_us.max(1);
    let burst =
        NonZeroU32::new(u32::try_from(burst).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    let q = Quota::with_period(gcra.interval())
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    (q, NonZeroU32::MIN)
}

impl<C: Clock> LocalGcra<C> {
    pub fn gcra(&self) -> &Gcra {
        &self.gcra
    }

    /// Takes a permit now, or says how long until one is free (nothing is taken then).
    pub fn try_acquire(&self) -> Result<(), Duration> {
        match self.limiter.check_n(self.per_permit) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            // Cannot happen: the bucket holds at least one permit by construction.
            Err(_) => Err(self.gcra.interval()),
        }
    }

    /// Empties the bucket: the next permit comes one interval from now at the earliest.
    /// Used when a replica falls back to local limiting, so the switch itself is no burst.
    pub fn drain(&self) {
        let bound = 2 + self.gcra.tolerance_us / self.gcra.interval_us.max(1);
        for _ in 0..bound {
            if self.try_acquire().is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn local(
        interval_ms: u64,
        burst: u32,
        guard: Duration,
    ) -> (LocalGcra<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let g = Gcra::new(
            Duration::from_millis(interval_ms),
            NonZeroU32::new(burst).unwrap(),
            guard,
        );
        (LocalGcra::with_clock(g, clock.clone()), clock)
    }

    #[test]
    fn matches_the_gcra_maths_including_the_guard() {
        let (l, clock) = local(250, 4, Duration::from_millis(50));
        assert!(l.try_acquire().is_ok());
        assert!(l.try_acquire().is_ok());
        assert!(l.try_acquire().is_ok());
        // the fourth of the burst waits for the guard
        let w = l.try_acquire().unwrap_err();
        assert!(w.as_millis().abs_diff(50) <= 1, "{w:?}");
        clock.advance(Duration::from_millis(50));
        assert!(l.try_acquire().is_ok());
        let w = l.try_acquire().unwrap_err();
        assert!(w.as_millis().abs_diff(250) <= 1, "{w:?}");
        clock.advance(Duration::from_millis(250));
        assert!(l.try_acquire().is_ok());
        assert!(l.try_acquire().is_err());
    }

    #[test]
    fn long_run_rate_is_the_interval() {
        let (l, clock) = local(250, 4, Duration::from_millis(50));
        let mut granted = 0;
        for _ in 0..(60_000 / 5) {
            while l.try_acquire().is_ok() {
                granted += 1;
            }
            clock.advance(Duration::from_millis(5));
        }
        // 60 s at 4/s plus the (trimmed) burst of 3
        assert!((240..=244).contains(&granted), "{granted}");
    }

    #[test]
    fn drain_leaves_nothing() {
        let (l, clock) = local(100, 5, Duration::ZERO);
        l.drain();
        assert!(l.try_acquire().is_err());
        clock.advance(Duration::from_millis(100));
        assert!(l.try_acquire().is_ok());
        assert!(l.try_acquire().is_err());
    }

    #[test]
    fn falls_back_to_whole_cells_for_huge_bursts() {
        let g = Gcra::new(
            Duration::from_millis(1),
            NonZeroU32::new(u32::MAX).unwrap(),
            Duration::ZERO,
        );
        let (q, per) = quota(&g);
        assert_eq!(per.get(), 1);
        assert_eq!(q.replenish_interval(), Duration::from_millis(1));
    }
}
