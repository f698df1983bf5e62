//! The shell shared by the layers whose work on a request is an `async` function of the
//! request and the rest of the stack (`authn`, `policy`, `cache`): each implements [`Step`],
//! and [`StepLayer`] / [`StepService`] are the one `Layer` + `Service` for all of them.
//!
//! # Guarantees
//! - Readiness is the inner service's: `poll_ready` delegates, and the instance that was made
//!   ready is the one the step receives (the service keeps a fresh clone for the next call),
//!   so a step may `call` it once without polling again. Further calls (a second request
//!   through the rest of the stack) must go through `ServiceExt::oneshot` on a clone.
//! - The step's future is boxed once per request, as each of these layers did by hand.

use std::future::Future;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::Body;
use crate::error::GatewayError;

/// The part of the stack below a step.
pub trait Inner:
    Service<Request<Body>, Response = Response<Body>, Error = GatewayError, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<T> Inner for T where
    T: Service<
            Request<Body>,
            Response = Response<Body>,
            Error = GatewayError,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// One layer's work on a request: `inner` is the rest of the stack, ready for one call.
pub trait Step: Clone + Send + 'static {
    fn run<S: Inner>(
        self,
        inner: S,
        req: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, GatewayError>> + Send + 'static;
}

/// The `Layer` of any [`Step`].
#[derive(Debug, Clone)]
pub struct StepLayer<T>(pub T);

impl<T: Clone, S> Layer<S> for StepLayer<T> {
    type Service = StepService<T, S>;
    fn layer(&self, inner: S) -> Self::Service {
        StepService {
            step: self.0.clone(),
            inner,
        }
    }
}

/// The `Service` of any [`Step`].
#[derive(Debug, Clone)]
pub struct StepService<T, S> {
    step: T,
    inner: S,
}

impl<T: Step, S: Inner> Service<Request<Body>> for StepService<T, S> {
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = BoxFuture<'static, Result<Response<Body>, GatewayError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(self.step.clone().run(ready, req))
    }
}

/// A layer's synchronous work around the inner call: it returns the inner service's future,
/// maybe wrapped, or an answer of its own, without boxing (`request_id`, `load_snapshot`,
/// `access_log`, `cors`, `route`, `timeout`, `user_limit`).
pub trait Around<S>: Clone {
    type Future;
    /// `inner` is ready (the service's `poll_ready` delegated to it).
    fn around(&self, inner: &mut S, req: Request<Body>) -> Self::Future;
}

/// The `Layer` of any [`Around`].
#[derive(Debug, Clone, Default)]
pub struct AroundLayer<T>(pub T);

impl<T: Clone, S> Layer<S> for AroundLayer<T> {
    type Service = AroundService<T, S>;
    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            around: self.0.clone(),
            inner,
        }
    }
}

/// The `Service` of any [`Around`].
#[derive(Debug, Clone)]
pub struct AroundService<T, S> {
    around: T,
    inner: S,
}

impl<T, S, E> Service<Request<Body>> for AroundService<T, S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = E>,
    T: Around<S, Future: Future<Output = Result<Response<Body>, E>>>,
{
    type Response = Response<Body>;
    type Error = E;
    type Future = T::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        self.around.around(&mut self.inner, req)
    }
}
