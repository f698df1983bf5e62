//! The shared budget in Redis, and what a replica does while Redis is unreachable.
//!
//! All replicas keep one GCRA state (one key holding the TAT, in microseconds of Redis's own
//! clock, so replica clocks never matter) and update it with one atomic Lua script,
//! [`SCRIPT`], called with EVALSHA (`redis::Script` reloads it on NOSCRIPT). The script
//! reserves the next slot and returns how long to wait for it; the replica sleeps that long
//! and hands the permit to the next waiter of its local fair queue. The same script, with a
//! pause argument, pushes the whole budget back after an upstream 429.
//!
//! # While Redis is unreachable
//! Every call has a [`CALL_TIMEOUT`]. The first failure switches the replica to *fallback*
//! (logged once): it limits itself locally to `rate * redis_fallback_share` and stays ready.
//! A probe (`PING`) runs every [`PROBE_EVERY`] while in fallback; the first success switches
//! back to *shared* (logged once). [`Link`] is that state machine, kept free of I/O so it can
//! be tested alone.
//!
//! # Switching without a burst
//! Replicas notice an outage (and its end) at different moments, and Outseta's own bucket
//! may be empty when they do. So each switch is followed by a *hold* during which the replica
//! sends nothing:
//! - into fallback: [`RESERVE_HORIZON`] (slots reserved in Redis before the outage, by any
//!   replica, run out) plus `burst * interval` (Outseta's bucket refills); then the local
//!   limiter starts from an empty bucket;
//! - back to shared: [`PROBE_EVERY`] (the other replicas notice too and stop their fallback
//!   sends) plus `burst * interval`.
//!
//! Requests queue through a hold like through any wait (bounded by `max_wait`).

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use super::Reservation;
use super::gcra::Gcra;
use super::local::LocalGcra;
use crate::telemetry::metrics as m;

/// The reservation script. Transcribes [`Gcra::reserve`] and [`Gcra::pause`].
///
/// `KEYS[1]` the budget key; ARGV: interval µs, tolerance µs, horizon µs, pause µs (0: reserve).
/// Returns `{reserved (0|1), wait µs}`. Numbers are written with `%.0f`: Lua would print a
/// 16-digit microsecond count in exponent form.
pub const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local pause = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
if pause > 0 then
  local floor = now + pause + tolerance
  if floor > tat then
    redis.call('SET', KEYS[1], string.format('%.0f', floor), 'PX', math.ceil((floor - now) / 1000) + 1000)
  end
  return {0, pause}
end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > horizon then return {0, wait} end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {1, wait}
";

/// Bound on every Redis call, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a replica in fallback checks whether Redis is back.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How far ahead a replica reserves a slot in Redis (a later slot is asked for again when it
/// comes within reach), so a replica holds at most one slot this far ahead.
pub const RESERVE_HORIZON: Duration = Duration::from_secs(1);

/// Where the permits of a Redis-backed budget come from right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Fallback,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Fallback => "fallback",
        }
    }
}

/// A change of [`Mode`], to be logged (once) by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Lost,
    Recovered,
}

/// The fallback state machine: pure, driven by call results and the time.
#[derive(Debug, Clone)]
pub struct Link {
    mode: Mode,
    since: Instant,
    next_probe: Instant,
    hold_until: Option<Instant>,
    /// Hold after losing Redis.
    lost_hold: Duration,
    /// Hold after getting it back.
    recovered_hold: Duration,
}

impl Link {
    /// Starts optimistic: shared until a call fails. `settle` is how long Outseta's bucket
    /// takes to refill (`burst * interval`).
    pub fn new(now: Instant, settle: Duration) -> Self {
        Self {
            mode: Mode::Shared,
            since: now,
            next_probe: now,
            hold_until: None,
            lost_hold: RESERVE_HORIZON + settle,
            recovered_hold: PROBE_EVERY + settle,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Since when the current mode holds.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// What is left of the hold after the last switch, if any.
    pub fn hold(&self, now: Instant) -> Option<Duration> {
        self.hold_until
            .filter(|u| *u > now)
            .map(|u| u.duration_since(now))
    }

    /// A call (or a probe) succeeded.
    pub fn on_ok(&mut self, now: Instant) -> Option<Transition> {
        match self.mode {
            Mode::Shared => None,
            Mode::Fallback => {
                self.mode = Mode::Shared;
                self.since = now;
                self.hold_until = Some(super::later(now, self.recovered_hold));
                Some(Transition::Recovered)
            }
        }
    }

    /// A call (or a probe) failed or timed out.
    pub fn on_error(&mut self, now: Instant) -> Option<Transition> {
        self.next_probe = now + PROBE_EVERY;
        match self.mode {
            Mode::Fallback => None,
            Mode::Shared => {
                self.mode = Mode::Fallback;
                self.since = now;
                self.hold_until = Some(super::later(now, self.lost_hold));
                Some(Transition::Lost)
            }
        }
    }

    /// Whether the probe should run at `now` (only in fallback, at most every
    /// [`PROBE_EVERY`]).
    pub fn probe_due(&self, now: Instant) -> bool {
        self.mode == Mode::Fallback && now >= self.next_probe
    }
}

/// A Redis-backed budget with its local fallback.
pub struct RedisStore {
    conn: ConnectionManager,
    script: redis::Script,
    key: String,
    gcra: Gcra,
    link: Mutex<Link>,
    fallback: LocalGcra,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("key", &self.key)
            .field("gcra", &self.gcra)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

/// The URL could not be used (a config error, found at startup).
#[derive(Debug, thiserror::Error)]
#[error("[upstream_limit] redis_url: {0}")]
pub struct BadUrl(String);

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RedisStore {
    /// Connects lazily: a Redis that is down at startup means starting in fallback, not
    /// failing to start.
    /// `settle`: how long Outseta's bucket takes to refill (`burst * interval`).
    pub fn new(
        url: &str,
        key: &str,
        gcra: Gcra,
        fallback: Gcra,
        settle: Duration,
    ) -> Result<Self, BadUrl> {
        let client = redis::Client::open(url).map_err(|e| BadUrl(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| BadUrl(e.to_string()))?;
        Ok(Self {
            conn,
            script: redis::Script::new(SCRIPT),
            key: key.to_string(),
            gcra,
            link: Mutex::new(Link::new(Instant::now(), settle)),
            fallback: LocalGcra::new(fallback),
        })
    }

    pub fn mode(&self) -> Mode {
        self.link().mode()
    }

    pub fn gcra(&self) -> &Gcra {
        &self.gcra
    }

    pub fn fallback(&self) -> &LocalGcra {
        &self.fallback
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the script once; `None` on any failure (already recorded).
    async fn call(&self, horizon: Duration, pause: Duration) -> Option<(bool, Duration)> {
        let mut conn = self.conn.clone();
        let mut inv = self.script.key(&self.key);
        inv.arg(self.gcra.interval_us)
            .arg(self.gcra.tolerance_us)
            .arg(us(horizon))
            .arg(us(pause));
        let result =
            tokio::time::timeout(CALL_TIMEOUT, inv.invoke_async::<(i64, i64)>(&mut conn)).await;
        match result {
            Ok(Ok((reserved, wait))) => {
                self.observe(Ok(()));
                let wait = Duration::from_micros(u64::try_from(wait).unwrap_or(0));
                Some((reserved == 1, wait))
            }
            Ok(Err(e)) => {
                self.observe(Err(e.to_string()));
                None
            }
            Err(_) => {
                self.observe(Err("timed out".into()));
                None
            }
        }
    }

    fn observe(&self, result: Result<(), String>) {
        let now = Instant::now();
        let transition = match &result {
            Ok(()) => self.link().on_ok(now),
            Err(_) => {
                metrics::counter!(m::BUDGET_REDIS_ERRORS).increment(1);
                self.link().on_error(now)
            }
        };
        match (transition, result) {
            (Some(Transition::Lost), Err(error)) => {
                self.fallback.drain();
                set_mode_gauge(Mode::Fallback);
                tracing::warn!(
                    %error,
                    key = %self.key,
                    "redis unreachable: limiting this replica locally to rate * redis_fallback_share until it is back"
                );
            }
            (Some(Transition::Recovered), _) => {
                set_mode_gauge(Mode::Shared);
                tracing::info!(key = %self.key, "redis reachable again: back to the shared budget");
            }
            _ => {}
        }
    }

    /// What is left of the hold after a switch of mode, if any.
    pub fn hold(&self) -> Option<Duration> {
        self.link().hold(Instant::now())
    }

    /// Asks for the next slot no further than `horizon` away.
    pub async fn reserve(&self, horizon: Duration) -> Reservation {
        if let Some(rest) = self.hold() {
            return Reservation::NotYet { retry_in: rest };
        }
        if self.mode() == Mode::Shared
            && let Some((reserved, wait)) = self.call(horizon, Duration::ZERO).await
        {
            return if reserved {
                Reservation::Reserved { wait }
            } else {
                Reservation::NotYet {
                    retry_in: wait.saturating_sub(horizon),
                }
            };
        }
        if let Some(rest) = self.hold() {
            return Reservation::NotYet { retry_in: rest };
        }
        match self.fallback.try_acquire() {
            Ok(()) => Reservation::Reserved {
                wait: Duration::ZERO,
            },
            Err(retry_in) => Reservation::NotYet { retry_in },
        }
    }

    /// Pushes the shared budget back by `d` (best effort: in fallback, only the local pause
    /// applies).
    pub async fn pause(&self, d: Duration) {
        if self.mode() == Mode::Shared {
            let _ = self
                .call(Duration::ZERO, d.max(Duration::from_micros(1)))
                .await;
        }
    }

    /// One probe if due: `PING` with the call timeout.
    pub async fn probe(&self) {
        if !self.link().probe_due(Instant::now()) {
            return;
        }
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        let r = tokio::time::timeout(CALL_TIMEOUT, ping.query_async::<String>(&mut conn)).await;
        match r {
            Ok(Ok(_)) => self.observe(Ok(())),
            Ok(Err(e)) => self.observe(Err(e.to_string())),
            Err(_) => self.observe(Err("timed out".into())),
        }
    }
}

/// Exposes the mode as `gateway_budget_mode{mode}` (1 for the current one).
pub fn set_mode_gauge(mode: Mode) {
    for m_ in [Mode::Shared, Mode::Fallback] {
        metrics::gauge!(m::BUDGET_MODE, "mode" => m_.as_str()).set(if m_ == mode {
            1.0
        } else {
            0.0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_once_probed_then_recovered_once() {
        let t0 = Instant::now();
        let settle = Duration::from_secs(1);
        let mut link = Link::new(t0, settle);
        assert_eq!(link.mode(), Mode::Shared);
        assert_eq!(link.hold(t0), None);
        assert!(!link.probe_due(t0));
        assert_eq!(link.on_ok(t0), None);
        // the first failure is a transition, later ones are not (logged once)
        assert_eq!(link.on_error(t0), Some(Transition::Lost));
        assert_eq!(link.on_error(t0), None);
        assert_eq!(link.mode(), Mode::Fallback);
        assert_eq!(link.since(), t0);
        // probes are spaced
        assert!(!link.probe_due(t0 + PROBE_EVERY / 2));
        assert!(link.probe_due(t0 + PROBE_EVERY));
        // a failed probe schedules the next one
        let t1 = t0 + PROBE_EVERY;
        assert_eq!(link.on_error(t1), None);
        assert!(!link.probe_due(t1 + PROBE_EVERY / 2));
        assert!(link.probe_due(t1 + PROBE_EVERY));
        // success: back to shared, once
        let t2 = t1 + PROBE_EVERY;
        assert_eq!(link.on_ok(t2), Some(Transition::Recovered));
        assert_eq!(link.on_ok(t2), None);
        assert_eq!(link.mode(), Mode::Shared);
        assert_eq!(link.since(), t2);
        assert!(!link.probe_due(t2 + PROBE_EVERY * 10));
    }

    #[test]
    fn every_switch_is_followed_by_a_hold() {
        let t0 = Instant::now();
        let settle = Duration::from_secs(1);
        let mut link = Link::new(t0, settle);
        link.on_error(t0);
        // reserved slots run out, then Outseta's bucket refills
        assert_eq!(link.hold(t0), Some(RESERVE_HORIZON + settle));
        assert_eq!(
            link.hold(t0 + RESERVE_HORIZON),
            Some(settle),
            "still holding"
        );
        assert_eq!(link.hold(t0 + RESERVE_HORIZON + settle), None);
        // a later failure in fallback does not extend it
        link.on_error(t0 + Duration::from_secs(5));
        assert_eq!(link.hold(t0 + Duration::from_secs(5)), None);
        // back: the others notice too, then the bucket refills
        let t1 = t0 + Duration::from_secs(6);
        link.on_ok(t1);
        assert_eq!(link.hold(t1), Some(PROBE_EVERY + settle));
        assert_eq!(link.hold(t1 + PROBE_EVERY + settle), None);
    }
}
