//! The shared upstream budget (docs/behaviour.md, "Shared upstream budget"): every upstream call made with the API key takes one
//! permit; callers that must wait queue fairly by user; a wait longer than `max_wait` (or
//! than what is left of the request) is refused with [`Busy`].
//!
//! ```text
//! acquire(user, deadline)
//!   ├─ nobody waiting, not paused, a permit free now ──────────────▶ Granted { waited: 0 }
//!   └─ else: place in the fair queue → expected wait → too long? ──▶ Busy { retry_after }
//!            queued; the dispatcher pops users in turn, one permit
//!            each, when the GCRA (local, or Redis) says a slot is due ─▶ Granted { waited }
//!            deadline first ───────────────────────────────────────────▶ Busy { retry_after }
//! ```
//!
//! # Parts
//! - [`gcra`]: the maths (interval, tolerance, the jitter guard), mirrored by the Redis script.
//! - [`local`]: governor, for `store = "memory"` and for the Redis fallback.
//! - [`redis`]: the script, the reconnecting connection and the fallback state machine.
//! - [`fair`]: the bounded round-robin queue by user.
//! - [`pause`]: the stop after an upstream 429.
//!
//! # Guarantees
//! - Permits are granted at most at the GCRA's pace: `rate`, plus `burst` at once after a
//!   quiet spell (less [`gcra::JITTER_GUARD`]); with Redis, for all replicas together.
//! - Waiters are woken, never polled: each holds a oneshot receiver; the one dispatcher
//!   task sleeps until a slot is due (or until someone queues) and wakes the next in turn.
//! - Bounded: the queue has a total and a per-user capacity; a waiter that gives up or is
//!   dropped (request cancelled) takes its entry out.
//! - No call on the request path blocks or panics; Redis calls have a timeout and failures
//!   fall back to local limiting instead of failing requests.
//!
//! The budget is built once at startup from `[upstream_limit]`; it survives reloads.

pub mod fair;
pub mod gcra;
pub mod local;
pub mod pause;
pub mod redis;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::fair::{FairQueue, Full};
use self::gcra::{Gcra, JITTER_GUARD};
use self::local::LocalGcra;
use self::pause::Pause;
use self::redis::{Mode, RedisStore};
use crate::config::{Store, UpstreamLimit};
use crate::limits::key::UserKey;
use crate::telemetry::handles as h;
use crate::telemetry::metrics as m;

/// `t + d`, or far in the future when that would overflow (absurd configured durations must
/// not panic on the request path).
pub fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(86_400 * 365 * 30)))
        .unwrap_or(t)
}

/// What a GCRA source answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// A permit is ours, usable `wait` from now.
    Reserved { wait: Duration },
    /// No permit within the horizon asked; ask again in `retry_in`.
    NotYet { retry_in: Duration },
}

/// A permit: the caller may make one upstream call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Time spent queueing.
    pub waited: Duration,
}

/// Why a request was refused a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyReason {
    /// The expected wait exceeds `max_wait`.
    MaxWait,
    /// The expected wait exceeds what is left of the request's deadline.
    Deadline,
    /// The queue is full.
    QueueFull,
    /// This user has as many requests waiting as can be served within `max_wait`.
    UserQueueFull,
    /// Queued, but no permit came before the limit.
    TimedOut,
}

impl BusyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxWait => "max_wait",
            Self::Deadline => "deadline",
            Self::QueueFull => "queue_full",
            Self::UserQueueFull => "user_queue_full",
            Self::TimedOut => "timed_out",
        }
    }
}

/// No permit in time; `retry_after` is the wait the budget expects for a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream budget cannot serve this request in time ({})", .reason.as_str())]
pub struct Busy {
    pub retry_after: Duration,
    pub reason: BusyReason,
}

/// Numbers the budget is built from (derived from `[upstream_limit]`).
#[derive(Debug, Clone)]
pub struct Params {
    pub gcra: Gcra,
    /// The GCRA used while Redis is unreachable (`rate * redis_fallback_share`).
    pub fallback: Gcra,
    pub max_wait: Duration,
    pub capacity: usize,
    pub per_user: usize,
    /// How long Outseta's bucket takes to refill: `burst * interval`.
    pub settle: Duration,
}

impl Params {
    pub fn from_config(cfg: &UpstreamLimit) -> Self {
        let interval = cfg.rate.interval().max(Duration::from_micros(1));
        let gcra = Gcra::new(interval, cfg.burst, JITTER_GUARD);
        let share = cfg.redis_fallback_share.clamp(f64::MIN_POSITIVE, 1.0);
        let fallback_interval = Duration::try_from_secs_f64(interval.as_secs_f64() / share)
            .unwrap_or(Duration::from_secs(3600));
        let fallback_burst = ((f64::from(cfg.burst.get()) * share).floor() as u32).max(1);
        let fallback = Gcra::new(
            fallback_interval,
            std::num::NonZeroU32::new(fallback_burst).unwrap_or(std::num::NonZeroU32::MIN),
            JITTER_GUARD,
        );
        // One user alone can be served at most max_wait / interval times within max_wait.
        let per_user = ((cfg.max_wait.as_secs_f64() / interval.as_secs_f64()).ceil() as usize)
            .saturating_add(1);
        let capacity = per_user.saturating_mul(4).clamp(64, 65_536);
        Self {
            gcra,
            fallback,
            max_wait: cfg.max_wait,
            capacity,
            per_user: per_user.clamp(1, capacity),
            settle: interval.saturating_mul(cfg.burst.get()),
        }
    }
}

enum Source {
    Memory(LocalGcra),
    Redis(RedisStore),
}

impl Source {
    async fn reserve(&self, horizon: Duration) -> Reservation {
        match self {
            Self::Memory(l) => match l.try_acquire() {
                Ok(()) => Reservation::Reserved {
                    wait: Duration::ZERO,
                },
                Err(retry_in) => Reservation::NotYet { retry_in },
            },
            Self::Redis(r) => r.reserve(horizon).await,
        }
    }

    /// The pace permits come at now (the fallback's while Redis is unreachable).
    fn interval(&self) -> Duration {
        match self {
            Self::Memory(l) => l.gcra().interval(),
            Self::Redis(r) => match r.mode() {
                Mode::Shared => r.gcra().interval(),
                Mode::Fallback => r.fallback().gcra().interval(),
            },
        }
    }

    /// The hold after a Redis mode switch, if one is running.
    fn hold(&self) -> Option<Duration> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(r) => r.hold(),
        }
    }

    fn mode(&self) -> &'static str {
        match self {
            Self::Memory(_) => "local",
            Self::Redis(r) => r.mode().as_str(),
        }
    }
}

struct Shared {
    source: Source,
    queue: Mutex<FairQueue<UserKey, oneshot::Sender<()>>>,
    wake: Notify,
    pause: Pause,
    max_wait: Duration,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, FairQueue<UserKey, oneshot::Sender<()>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_idle(&self) -> bool {
        self.queue().is_empty()
    }

    /// Expected wait for an entry at `position` whose first slot is `first` away.
    fn estimate(&self, now: Instant, position: usize, first: Option<Duration>) -> Duration {
        let interval = self.source.interval();
        let first = first.unwrap_or(interval);
        let ahead = u32::try_from(position.saturating_sub(1)).unwrap_or(u32::MAX);
        let pause = self.pause.remaining(now).unwrap_or_default();
        let hold = self.source.hold().unwrap_or_default();
        first
            .max(pause)
            .max(hold)
            .saturating_add(interval.saturating_mul(ahead))
    }

    /// Hands one permit to the next waiter in turn; `false` if nobody took it.
    fn grant_next(&self) -> bool {
        let mut q = self.queue();
        let mut granted = false;
        while let Some((_, tx)) = q.pop() {
            if tx.send(()).is_ok() {
                granted = true;
                break;
            }
        }
        metrics::gauge!(m::BUDGET_QUEUE_DEPTH).set(q.len() as f64);
        granted
    }

    fn granted(&self, start: Instant, how: &'static str) -> Granted {
        let waited = start.elapsed();
        h::BUDGET_PERMITS.get(how).increment(1);
        h::BUDGET_WAIT.get(()).record(waited.as_secs_f64());
        Granted { waited }
    }

    fn busy(&self, reason: BusyReason, retry_after: Duration) -> Busy {
        metrics::counter!(m::BUDGET_REJECTIONS, "reason" => reason.as_str()).increment(1);
        Busy {
            retry_after: retry_after.max(Duration::from_secs(1)),
            reason,
        }
    }
}

/// Takes a queued entry out when its waiter stops waiting (timeout or cancellation).
struct Ticket<'a> {
    shared: &'a Shared,
    user: UserKey,
    id: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut q = self.shared.queue();
        if q.remove(&self.user, self.id).is_some() {
            metrics::gauge!(m::BUDGET_QUEUE_DEPTH).set(q.len() as f64);
        }
    }
}

/// Aborts the budget's tasks when the last handle goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The budget handle (cheap to clone).
#[derive(Clone)]
pub struct Budget {
    shared: Arc<Shared>,
    store: Store,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("store", &self.store)
            .field("mode", &self.shared.source.mode())
            .finish_non_exhaustive()
    }
}

/// What `/readyz` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub store: &'static str,
    /// `local` (memory store), `shared` or `fallback` (Redis store).
    pub mode: &'static str,
    pub queued: usize,
    pub waiting_users: usize,
    pub paused_for: Option<Duration>,
}

impl Status {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "store": self.store,
            "mode": self.mode,
            "queued": self.queued,
            "waiting_users": self.waiting_users,
            "paused_ms": self.paused_for.map(|d| d.as_millis() as u64),
        })
    }
}

impl Budget {
    /// Builds the budget for `[upstream_limit]` and starts its dispatcher (call inside a
    /// tokio runtime). With `store = "redis"` the connection is made lazily.
    pub fn new(cfg: &UpstreamLimit) -> Result<Self, redis::BadUrl> {
        let params = Params::from_config(cfg);
        let source = match cfg.store {
            Store::Memory => Source::Memory(LocalGcra::new(params.gcra)),
            Store::Redis => Source::Redis(RedisStore::new(
                &cfg.redis_url,
                &cfg.redis_key,
                params.gcra,
                params.fallback,
                params.settle,
            )?),
        };
        Ok(Self::start(source, cfg.store, &params))
    }

    fn start(source: Source, store: Store, p: &Params) -> Self {
        let shared = Arc::new(Shared {
            source,
            queue: Mutex::new(FairQueue::new(p.capacity, p.per_user)),
            wake: Notify::new(),
            pause: Pause::default(),
            max_wait: p.max_wait,
        });
        let mut tasks = vec![tokio::spawn(dispatch(shared.clone()))];
        match shared.source {
            Source::Redis(_) => {
                redis::set_mode_gauge(Mode::Shared);
                tasks.push(tokio::spawn(probe(shared.clone())));
            }
            Source::Memory(_) => {
                metrics::gauge!(m::BUDGET_MODE, "mode" => "local").set(1.0);
            }
        }
        Self {
            shared,
            store,
            _tasks: Arc::new(Tasks(tasks)),
        }
    }

    /// Waits for a permit for `user`, at most `max_wait` and never past `deadline`.
    pub async fn acquire(&self, user: &UserKey, deadline: Instant) -> Result<Granted, Busy> {
        let s = &*self.shared;
        let start = Instant::now();
        let limit = deadline.min(later(start, s.max_wait));
        let mut first = None;
        if s.is_idle() && s.pause.remaining(start).is_none() {
            match s.source.reserve(Duration::ZERO).await {
                Reservation::Reserved { wait } if wait.is_zero() => {
                    return Ok(s.granted(start, "immediate"));
                }
                Reservation::Reserved { wait } => first = Some(wait),
                Reservation::NotYet { retry_in } => first = Some(retry_in),
            }
        }
        let now = Instant::now();
        let (mut rx, _ticket) = {
            let mut q = s.queue();
            let estimate = s.estimate(now, q.position(user), first);
            if later(now, estimate) > limit {
                let reason = if deadline < later(start, s.max_wait) {
                    BusyReason::Deadline
                } else {
                    BusyReason::MaxWait
                };
                return Err(s.busy(reason, estimate));
            }
            let (tx, rx) = oneshot::channel();
            let id = q.push(user.clone(), tx).map_err(|full| {
                let reason = match full {
                    Full::Queue => BusyReason::QueueFull,
                    Full::User => BusyReason::UserQueueFull,
                };
                s.busy(reason, estimate)
            })?;
            metrics::gauge!(m::BUDGET_QUEUE_DEPTH).set(q.len() as f64);
            let ticket = Ticket {
                shared: s,
                user: user.clone(),
                id,
            };
            (rx, ticket)
        };
        s.wake.notify_one();
        let got = match tokio::time::timeout_at(limit, &mut rx).await {
            Ok(r) => r.is_ok(),
            // A permit sent just as the limit passed is still a permit.
            Err(_) => rx.try_recv().is_ok(),
        };
        if got {
            Ok(s.granted(start, "queued"))
        } else {
            let position = s.queue().position(user);
            Err(s.busy(
                BusyReason::TimedOut,
                s.estimate(Instant::now(), position, None),
            ))
        }
    }

    /// Outseta answered 429: pause the whole budget for `d` (every replica, with Redis).
    pub async fn pause(&self, d: Duration) {
        metrics::counter!(m::UPSTREAM_429).increment(1);
        self.shared.pause.extend(Instant::now(), d);
        if let Source::Redis(r) = &self.shared.source {
            r.pause(d).await;
        }
        tracing::warn!(
            pause_ms = d.as_millis() as u64,
            "Outseta answered 429: pausing the upstream budget"
        );
    }

    /// The longest a request may queue (`[upstream_limit] max_wait` at startup).
    pub fn max_wait(&self) -> Duration {
        self.shared.max_wait
    }

    pub fn status(&self) -> Status {
        let s = &*self.shared;
        let (queued, waiting_users) = {
            let q = s.queue();
            (q.len(), q.users())
        };
        Status {
            store: match self.store {
                Store::Memory => "memory",
                Store::Redis => "redis",
            },
            mode: s.source.mode(),
            queued,
            waiting_users,
            paused_for: s.pause.remaining(Instant::now()),
        }
    }
}

/// The dispatcher: while anyone waits, get the next slot from the GCRA source, sleep until
/// it is due (and past any pause), and hand it to the next waiter in turn.
async fn dispatch(shared: Arc<Shared>) {
    loop {
        while shared.is_idle() {
            shared.wake.notified().await;
        }
        if let Some(rest) = shared.pause.remaining(Instant::now()) {
            tokio::time::sleep(rest).await;
            continue;
        }
        match shared
            .source
            .reserve(shared.max_wait.min(redis::RESERVE_HORIZON))
            .await
        {
            Reservation::Reserved { wait } => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                // A pause that began while we slept holds the permit back too.
                while let Some(rest) = shared.pause.remaining(Instant::now()) {
                    tokio::time::sleep(rest).await;
                }
                shared.grant_next();
            }
            Reservation::NotYet { retry_in } => {
                tokio::time::sleep(retry_in.max(Duration::from_millis(1))).await;
            }
        }
    }
}

/// While a Redis budget is in fallback, checks every [`redis::PROBE_EVERY`] whether Redis is
/// back.
async fn probe(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(redis::PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Source::Redis(r) = &shared.source {
            r.probe().await;
        }
    }
}

#[cfg(test)]
mod tests;
