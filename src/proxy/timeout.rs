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

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Map;
use http::{Request, Response};
use tower::{Layer, Service};

use super::context::{Deadline, context, context_mut};
use crate::body::Body;
use crate::error::GatewayError;

#[derive(Debug, Clone, Default)]
pub struct RequestTimeoutLayer;

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestTimeout<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for RequestTimeout<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = Map<tokio::time::Timeout<S::Future>, Flatten>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let limit = context(&req)
            .and_then(|c| c.snapshot.as_ref())
            .map(|s| s.config.server.request_timeout)
            .unwrap_or(Duration::from_secs(30));
        let deadline = crate::budget::later(tokio::time::Instant::now(), limit);
        context_mut(&mut req).deadline = Some(Deadline(deadline));
        tokio::time::timeout_at(deadline, self.inner.call(req)).map(flatten)
    }
}

type Outcome = Result<Response<Body>, GatewayError>;
type Flatten = fn(Result<Outcome, tokio::time::error::Elapsed>) -> Outcome;

fn flatten(r: Result<Outcome, tokio::time::error::Elapsed>) -> Outcome {
    r.unwrap_or(Err(GatewayError::UpstreamTimeout))
}
