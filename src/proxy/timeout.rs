//! The overall deadline of a request (`server.request_timeout`), queueing included: on expiry
//! the request is answered 504 `upstream_timeout` and the work below is dropped. The deadline
//! is also put in the request ([`Deadline`]) so the budget can refuse a wait that would not
//! fit in it.
//!
//! # Position in the stack
//! Right below routing (which loads the limits), above auth, policy and forwarding.
//!
//! The deadline is also put in the request's context ([`Deadline`]) for layers that wait
//! on other requests' work (the cache's coalesced followers).

use futures_util::FutureExt;
use futures_util::future::Map;
use http::Response;
use tower::Service;

use super::context::{Deadline, Failure, Routed, context_mut};
use super::step::{Around, AroundLayer};
use crate::body::Body;
use crate::error::GatewayError;

/// The deadline step (through [`AroundLayer`]).
#[derive(Debug, Clone, Default)]
pub struct RequestTimeout;

/// The layer of [`RequestTimeout`].
pub type RequestTimeoutLayer = AroundLayer<RequestTimeout>;

impl<S> Around<S, Routed> for RequestTimeout
where
    S: Service<Routed, Response = Response<Body>, Error = Failure>,
{
    type Next = Routed;
    type Future = Map<tokio::time::Timeout<S::Future>, Flatten>;

    fn around(&self, inner: &mut S, mut req: Routed) -> Self::Future {
        let limit = req.snapshot.config.server.request_timeout;
        let deadline = crate::budget::later(tokio::time::Instant::now(), limit);
        context_mut(&mut req.req).deadline = Some(Deadline(deadline));
        tokio::time::timeout_at(deadline, inner.call(req)).map(flatten)
    }
}

type Outcome = Result<Response<Body>, Failure>;
type Flatten = fn(Result<Outcome, tokio::time::error::Elapsed>) -> Outcome;

fn flatten(r: Result<Outcome, tokio::time::error::Elapsed>) -> Outcome {
    r.unwrap_or_else(|_| Err(GatewayError::UpstreamTimeout.into()))
}
