//! The cache layer: answers GETs of cacheable rules from the store, coalesces misses,
//! serves stale entries, and invalidates after writes.
//!
//! # Position in the stack
//! Between `policy` and `forward`. Policy has judged the caller and written the [`Plan`](super::context::Plan)
//! before any lookup, and runs `response_when` on whatever this layer returns (hits
//! included), so a cached body only ever reaches a caller who could have fetched it.
//!
//! # Per request
//! - GET, rule with `cache` on: look up the key ([`crate::cache::key`]).
//!   - fresh → `hit; ttl=N` (no upstream call);
//!   - within `stale_while_revalidate` → stale at once, one background refresh through the
//!     same inner service (so it pays the shared budget like any call);
//!   - otherwise lead or follow the key's lock ([`crate::cache::lock`]); the leader's call is the
//!     only upstream traffic; its answer is stored if it may be ([`crate::cache::control`]) and
//!     handed to the followers (`fwd=miss; collapsed`); failures, 5xx/429 answers and a
//!     follower's deadline fall back to a stale entry within `stale_if_error`.
//! - Any other method: passed through; a 2xx to an unsafe one invalidates
//!   ([`crate::cache::invalidate`]). Responses of cacheable rules get `Cache-Status: …; fwd=bypass`.
//! - GETs of rules without `cache`: passed through untouched.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use tower::{Service, ServiceExt};

use super::context::{Deadline, Failure, Planned, RequestContext, Trail, context, trail_of};
use super::step::{Step, StepLayer};
use crate::body::{self, Body};
use crate::cache::ResponseCache;
use crate::cache::entry::{CACHE_STATUS, Entry};
use crate::cache::fetch::{Fetched, Lifetime, settle};
use crate::cache::invalidate;
use crate::cache::key::{self, CacheKey};
use crate::cache::lock::{Leader, Lock, State};
use crate::cache::stale::{self, Freshness, Windows, classify};
use crate::cache::status::{BypassReason, CacheStatus, StaleReason};
use crate::cache::store::Refused;
use crate::error::GatewayError;
use crate::telemetry::metrics as m;

/// The cache step (through [`StepLayer`]).
#[derive(Debug, Clone)]
pub struct Cache {
    cache: Arc<ResponseCache>,
}

/// The layer of [`Cache`].
pub type CacheLayer = StepLayer<Cache>;

impl CacheLayer {
    pub fn new(cache: Arc<ResponseCache>) -> Self {
        StepLayer(Cache { cache })
    }
}

impl<S> Step<S, Planned> for Cache
where
    S: Service<Planned, Response = Response<Body>, Error = Failure> + Send + 'static,
    S::Future: Send + 'static,
{
    type Next = Planned;

    fn run(
        self,
        inner: S,
        req: Planned,
    ) -> impl Future<Output = Result<Response<Body>, Failure>> + Send + 'static {
        handle(self.cache, inner, req)
    }
}

async fn handle<S>(
    cache: Arc<ResponseCache>,
    inner: S,
    req: Planned,
) -> Result<Response<Body>, Failure>
where
    S: Service<Planned, Response = Response<Body>, Error = Failure> + Send + 'static,
    S::Future: Send + 'static,
{
    let rule = req.matched.rule.clone();
    let ext = context(&req.req);
    let cfg = &req.snapshot.config.cache;
    let ttl = rule.cache_ttl(cfg.ttl);

    if req.req.method() != Method::GET {
        let targets = invalidate::is_unsafe(req.req.method()).then(|| {
            let m = &req.matched;
            let claims = Some(&req.caller.principal.claims);
            invalidate::targets(m.path.as_str(), &m.params, claims, &rule)
        });
        let mut rsp = inner.oneshot(req).await?;
        if let Some(targets) = targets
            && rsp.status().is_success()
        {
            // Boxed, like the miss path below: it keeps the hit path's future small.
            Box::pin(cache.store().invalidate_paths(&targets)).await;
        }
        if ttl.is_some() {
            let status = CacheStatus::Bypass(BypassReason::Method);
            rsp.headers_mut()
                .insert(CACHE_STATUS, status.header_value());
            rsp = record(status, &rule.name, rsp);
        }
        return Ok(rsp);
    }
    let Some(ttl) = ttl else {
        return inner.oneshot(req).await;
    };
    let windows = Windows {
        stale_while_revalidate: cfg.stale_while_revalidate,
        stale_if_error: cfg.stale_if_error,
    };
    let now = Instant::now();

    // The lookup borrows the plan from the request; a hit returns without owning the key.
    let (key, found) = {
        let plan = &req.plan;
        let key = key::build(
            &plan.path,
            plan.query.as_deref(),
            plan.credential,
            req.caller.principal.sub().map(|s| &**s),
        );
        let found = cache.store().get(&key).await;
        if let Some(e) = &found
            && let Freshness::Fresh { ttl_left } = classify(e, now, windows)
        {
            let status = CacheStatus::Hit {
                ttl: ttl_left.as_secs(),
            };
            let rsp = e.respond(status.header_value(), Some(e.age(now)));
            return Ok(record(status, &rule.name, rsp));
        }
        (CacheKey::new(&key), found)
    };

    let request_timeout = req.snapshot.config.server.request_timeout;
    let deadline = ext
        .and_then(|c| c.deadline)
        .map_or(now + request_timeout, |d| d.0.into_std());
    let ctx = Ctx {
        cache,
        rule_name: rule.name.clone(),
        life: Lifetime {
            ttl,
            stale_window: windows.keep(),
        },
        windows,
        deadline,
        request_timeout,
    };

    let mut stale = None;
    if let Some(e) = found {
        match classify(&e, now, windows) {
            Freshness::Revalidate => {
                if e.may_refresh(now)
                    && let Some(leader) = ctx.cache.locks().try_lead(key.as_str())
                {
                    spawn_refresh(ctx.clone(), inner, req, leader, key, e.clone());
                }
                return Ok(ctx.serve_stale(&e, StaleReason::Revalidating));
            }
            Freshness::IfError => stale = Some(e),
            Freshness::Fresh { .. } | Freshness::Expired => {}
        }
    }
    // Boxed: the miss path (lock, fetch, buffer, store) is a large state machine, and
    // inlining it would make every hit allocate and move it.
    Box::pin(miss(&ctx, inner, req, key, stale)).await
}

/// What the miss path needs once the snapshot is let go.
#[derive(Clone)]
struct Ctx {
    cache: Arc<ResponseCache>,
    rule_name: Arc<str>,
    life: Lifetime,
    windows: Windows,
    deadline: Instant,
    request_timeout: Duration,
}

impl Ctx {
    fn record(&self, status: CacheStatus, rsp: Response<Body>) -> Response<Body> {
        record(status, &self.rule_name, rsp)
    }

    fn serve_stale(&self, entry: &Entry, reason: StaleReason) -> Response<Body> {
        self.record(CacheStatus::Stale(reason), stale::respond(entry, reason))
    }

    /// `entry` for this caller with `status`, or the stale entry if `entry` is a 5xx/429.
    fn answer(&self, entry: &Entry, status: CacheStatus, stale: Option<&Entry>) -> Response<Body> {
        if let (Some(reason), Some(st)) = (StaleReason::from_status(entry.status), stale) {
            return self.serve_stale(st, reason);
        }
        self.record(status, entry.respond(status.header_value(), None))
    }

    /// An answer nobody else shares: stale if it is a 5xx/429 and a stale entry exists, else
    /// passed on with `fwd=bypass`.
    fn pass(
        &self,
        mut rsp: Response<Body>,
        reason: BypassReason,
        stale: Option<&Entry>,
    ) -> Response<Body> {
        if let (Some(r), Some(st)) = (StaleReason::from_status(rsp.status()), stale) {
            return self.serve_stale(st, r);
        }
        let status = CacheStatus::Bypass(reason);
        rsp.headers_mut()
            .insert(CACHE_STATUS, status.header_value());
        self.record(status, rsp)
    }

    /// A failed call: stale if one exists and the failure is the upstream's, else the error.
    fn failed(&self, f: Failure, stale: Option<&Entry>) -> Result<Response<Body>, Failure> {
        match (StaleReason::from_error(&f.error), stale) {
            (Some(reason), Some(st)) => {
                let mut rsp = self.serve_stale(st, reason);
                trail_of(&mut rsp).merge(f.into_parts().1);
                Ok(rsp)
            }
            _ => Err(f),
        }
    }

    fn count_miss(&self) {
        use crate::telemetry::handles::{CACHE, Label, RuleKey};
        CACHE
            .get((
                Label(m::CACHE_MISSES),
                RuleKey(self.rule_name.clone()),
                Label(""),
            ))
            .increment(1);
    }
}

fn retry_after(e: &GatewayError) -> Option<Duration> {
    match e {
        GatewayError::UpstreamBusy { retry_after } => Some(*retry_after),
        _ => None,
    }
}

/// Publishes a failed call to the followers: they fall back to stale, or (budget refusal)
/// share the error; any other failure lets them elect a new leader.
fn publish_failure(leader: Leader, e: &GatewayError) {
    match StaleReason::from_error(e) {
        Some(reason) => leader.fail(reason, retry_after(e)),
        None => drop(leader),
    }
}

async fn miss<S>(
    ctx: &Ctx,
    inner: S,
    req: Planned,
    key: CacheKey,
    stale: Option<Arc<Entry>>,
) -> Result<Response<Body>, Failure>
where
    S: Service<Planned, Response = Response<Body>, Error = Failure> + Send,
    S::Future: Send,
{
    let stale = stale.as_deref();
    loop {
        match ctx.cache.locks().lock(key.as_str()) {
            Lock::Leader(leader) => {
                // A leader may have stored the key between our lookup and our lock.
                if let Some(e) = ctx.cache.store().get(key.as_str()).await {
                    let now = Instant::now();
                    if let Freshness::Fresh { ttl_left } = classify(&e, now, ctx.windows) {
                        leader.finish(e.clone());
                        let status = CacheStatus::Hit {
                            ttl: ttl_left.as_secs(),
                        };
                        let rsp = e.respond(status.header_value(), Some(e.age(now)));
                        return Ok(ctx.record(status, rsp));
                    }
                }
                return lead(ctx, inner, req, leader, key, stale).await;
            }
            Lock::Follower(follower) => match follower.wait(ctx.deadline).await {
                Some(State::Done(e)) => return Ok(ctx.answer(&e, CacheStatus::Collapsed, stale)),
                Some(State::Failed {
                    reason,
                    retry_after,
                }) => {
                    if let Some(st) = stale {
                        return Ok(ctx.serve_stale(st, reason));
                    }
                    if let Some(retry_after) = retry_after {
                        return Err(GatewayError::UpstreamBusy { retry_after }.into());
                    }
                    // Not poisoned: compete to lead.
                }
                Some(State::Released | State::Pending) => {}
                Some(State::GaveUp) => {
                    ctx.count_miss();
                    return match inner.oneshot(req).await {
                        Ok(rsp) => Ok(ctx.pass(rsp, BypassReason::TooLarge, stale)),
                        Err(e) => ctx.failed(e, stale),
                    };
                }
                None => {
                    return ctx.failed(GatewayError::UpstreamTimeout.into(), stale);
                }
            },
        }
    }
}

/// This request fetches for everyone waiting on `key`.
async fn lead<S>(
    ctx: &Ctx,
    inner: S,
    req: Planned,
    leader: Leader,
    key: CacheKey,
    stale: Option<&Entry>,
) -> Result<Response<Body>, Failure>
where
    S: Service<Planned, Response = Response<Body>, Error = Failure>,
{
    ctx.count_miss();
    let since = ctx.cache.store().seq();
    // The upstream call's trail goes to this caller's answer, whatever the cache makes of it.
    let (result, upstream) = match inner.oneshot(req).await {
        Ok(mut rsp) => {
            let t = rsp.extensions_mut().remove::<Trail>().unwrap_or_default();
            (Ok(rsp), t)
        }
        Err(f) => {
            let (error, trail, _) = f.into_parts();
            (Err(error), trail)
        }
    };
    let key_len = key.as_str().len();
    let out = match settle(ctx.cache.store(), key_len, result, ctx.life, ctx.deadline).await {
        Fetched::Failed(e) => {
            publish_failure(leader, &e);
            return ctx.failed(Failure::with_trail(e, upstream), stale);
        }
        Fetched::Streamed(rsp) => {
            leader.give_up();
            ctx.pass(rsp, BypassReason::TooLarge, stale)
        }
        Fetched::Buffered(entry, storable) => {
            let status = match storable {
                Ok(()) => match ctx.cache.store().insert(key, entry.clone(), since).await {
                    Ok(()) => CacheStatus::Stored,
                    Err(Refused::TooLarge) => CacheStatus::Bypass(BypassReason::TooLarge),
                    Err(Refused::Invalidated) => CacheStatus::Bypass(BypassReason::Invalidated),
                },
                Err(reason) => CacheStatus::Bypass(reason),
            };
            leader.finish(entry.clone());
            ctx.answer(&entry, status, stale)
        }
    };
    let mut out = out;
    trail_of(&mut out).merge(upstream);
    Ok(out)
}

/// After a background refresh that did not store, the stale entry is not refreshed again for
/// this long: a failing upstream must not be called once per stale-served request.
const REFRESH_BACKOFF: Duration = Duration::from_secs(1);

/// Refreshes the stale entry `old` in the background, through the same inner service as any
/// call (so it pays the shared budget).
fn spawn_refresh<S>(
    ctx: Ctx,
    inner: S,
    req: Planned,
    leader: Leader,
    key: CacheKey,
    old: Arc<Entry>,
) where
    S: Service<Planned, Response = Response<Body>, Error = Failure> + Send + 'static,
    S::Future: Send + 'static,
{
    let Planned {
        req,
        snapshot,
        matched,
        caller,
        plan,
    } = req;
    let (mut parts, _body) = req.into_parts();
    let deadline = Instant::now() + ctx.request_timeout;
    let rc = parts.extensions.get_or_insert_default::<RequestContext>();
    rc.deadline = Some(Deadline(deadline.into()));
    let req = Planned {
        req: Request::from_parts(parts, body::empty()),
        snapshot,
        matched,
        caller,
        plan,
    };
    tokio::spawn(async move {
        let since = ctx.cache.store().seq();
        let result = match tokio::time::timeout_at(deadline.into(), inner.oneshot(req)).await {
            Ok(r) => r.map_err(|f| f.error),
            Err(_) => Err(GatewayError::UpstreamTimeout),
        };
        let key_len = key.as_str().len();
        let outcome = match settle(ctx.cache.store(), key_len, result, ctx.life, deadline).await {
            Fetched::Failed(e) => {
                publish_failure(leader, &e);
                "failed"
            }
            Fetched::Streamed(_) => {
                leader.give_up();
                "not_stored"
            }
            Fetched::Buffered(entry, storable) => {
                let stored = match storable {
                    Ok(()) => ctx
                        .cache
                        .store()
                        .insert(key, entry.clone(), since)
                        .await
                        .is_ok(),
                    Err(_) => false,
                };
                leader.finish(entry);
                if stored { "stored" } else { "not_stored" }
            }
        };
        if outcome != "stored" {
            old.hold_refresh(Instant::now(), REFRESH_BACKOFF);
        }
        metrics::counter!(m::CACHE_REFRESHES, "rule" => ctx.rule_name.clone(), "result" => outcome)
            .increment(1);
    });
}

/// Counts `status` and puts it on the answer's trail (the access line's `cache` label).
fn record(status: CacheStatus, rule: &Arc<str>, mut rsp: Response<Body>) -> Response<Body> {
    status.count(rule);
    trail_of(&mut rsp).cache = Some(status.label());
    rsp
}
