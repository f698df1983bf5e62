//! One access line and the request metrics per request (docs/behaviour.md, "Operations").
//!
//! # Position in the stack
//! Outside CORS and the rescue boundary, so preflights and every error are logged and
//! counted. What the layers below learned arrives with the response, as its [`Trail`]
//! extension, which this layer takes off.
//!
//! The line carries the request id, method, path (never the query: Outseta's embed puts
//! `access_token` in URLs), rule, user `sub`, decision, cache status, upstream status, budget
//! wait and latency. Never a header value.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use http::{Method, Response};
use metrics::Gauge;
use tower::Service;

use super::context::{Decision, Loaded, Trail, context};
use super::finish::{Finish, Finishing};
use super::step::{Around, AroundLayer};
use crate::body::Body;
use crate::error::ProblemCode;
use crate::telemetry::handles as h;

/// The access-log step (through [`AroundLayer`]).
#[derive(Debug, Clone, Default)]
pub struct AccessLog;

/// The layer of [`AccessLog`].
pub type AccessLogLayer = AroundLayer<AccessLog>;

fn decision(code: Option<ProblemCode>, recorded: Decision) -> Decision {
    match (recorded, code) {
        (Decision::Preflight, _) => Decision::Preflight,
        (_, None) => Decision::Allow,
        (_, Some(c)) if c.is_refusal() => Decision::Deny,
        (_, Some(_)) => Decision::Error,
    }
}

impl<S> Around<S, Loaded> for AccessLog
where
    S: Service<Loaded, Response = Response<Body>, Error = Infallible>,
{
    type Next = Loaded;
    type Future = Finishing<S::Future, Done>;

    fn around(&self, inner: &mut S, req: Loaded) -> Self::Future {
        let start = Instant::now();
        // The line's request fields are copied only when the line will be written.
        let line = tracing::enabled!(target: "access", tracing::Level::INFO).then(|| Line {
            method: req.req.method().clone(),
            path: req.req.uri().path().to_string(),
            request_id: context(&req.req)
                .and_then(|c| c.request_id.as_ref())
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
        });
        let in_flight = InFlight::enter();
        Finishing::new(
            inner.call(req),
            Done {
                start,
                line,
                in_flight,
            },
        )
    }
}

/// What the line and the metrics need once the response is ready.
pub struct Done {
    start: Instant,
    line: Option<Line>,
    in_flight: InFlight,
}

/// One request in `gateway_requests_in_flight`, until dropped — also when the client goes
/// away and the request's future is dropped unfinished.
struct InFlight(Gauge);

impl InFlight {
    fn enter() -> Self {
        let g = h::IN_FLIGHT.get(());
        g.increment(1.0);
        Self(g)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl Finish for Done {
    fn finish(self, rsp: &mut Response<Body>) {
        let Self {
            start,
            line,
            in_flight,
        } = self;
        drop(in_flight);
        let elapsed = start.elapsed();
        let t = rsp.extensions_mut().remove::<Trail>().unwrap_or_default();
        let code = rsp.extensions().get::<ProblemCode>().copied();
        let decision = decision(code, t.decision);
        let status = rsp.status().as_u16();
        h::REQUESTS
            .get((
                h::RuleKey(t.rule.clone().unwrap_or_else(no_rule)),
                h::Label(decision.as_str()),
                status,
            ))
            .increment(1);
        h::REQUEST_DURATION
            .get(h::Label(decision.as_str()))
            .record(elapsed.as_secs_f64());
        if let Some(line) = line {
            tracing::info!(
                target: "access",
                request_id = line.request_id.as_str(),
                method = line.method.as_str(),
                path = line.path.as_str(),
                rule = t.rule.as_deref().unwrap_or(""),
                sub = t.sub.as_deref().unwrap_or(""),
                decision = decision.as_str(),
                status,
                code = code.map_or("", ProblemCode::as_str),
                cache = t.cache.unwrap_or(""),
                upstream_status = t.upstream_status.unwrap_or(0),
                upstream_ms = t.upstream_latency.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
                budget_wait_ms = t.budget_wait.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
        }
    }
}

/// The request's fields of the access line, taken before the request moves on.
struct Line {
    method: Method,
    path: String,
    request_id: String,
}

/// The `rule` label of requests no rule matched.
fn no_rule() -> Arc<str> {
    static EMPTY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
    EMPTY.clone()
}
