//! The clock rate limiters read: a leaf shared by the budget ([`crate::budget`]) and the
//! per-user limit ([`crate::limits`]), so their limiters, sleeps and deadlines share one time
//! source.

use governor::clock::Clock;
use governor::nanos::Nanos;

/// A governor clock reading `tokio::time::Instant` (honours `tokio::time::pause` in tests).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}
