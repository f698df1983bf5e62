//! The two shells every layer of the request path is built from, so that no layer writes its
//! own `Layer` + `Service` pair:
//!
//! - [`Step`] ([`StepLayer`] / [`StepService`]): the layer's work is an `async` function of
//!   the request and the rest of the stack (`authn`, `policy`, `cache`); its future is boxed
//!   once per request.
//! - [`Around`] ([`AroundLayer`] / [`AroundService`]): synchronous work around the inner
//!   call, which returns the inner future (maybe wrapped) or an answer of its own, unboxed
//!   (`request_id`, `load_snapshot`, `access_log`, `cors`, `route`, `timeout`, `user_limit`).
//!
//! Both are generic over the request type a layer takes and the one it hands on (`Next`):
//! the typed requests of [`super::context`] ([`Routed`](super::context::Routed),
//! [`Authed`](super::context::Authed), [`Planned`](super::context::Planned)) make a stack in
//! the wrong order fail to compile.
//!
//! # Guarantees
//! - Readiness is the inner service's: `poll_ready` delegates, and the instance that was made
//!   ready is the one the layer's work receives (a [`StepService`] keeps a fresh clone for the
//!   next call), so it may `call` it once without polling again. Any further call (a second
//!   request through the rest of the stack) goes through `ServiceExt::oneshot` on a clone.

use std::future::Future;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::Response;
use tower::{Layer, Service};

use super::context::Failure;
use crate::body::Body;

/// One layer's asynchronous work on a request of type `R`; `inner` (`S`) is the rest of the
/// stack, which takes the step's [`Step::Next`], ready for one call.
pub trait Step<S, R>: Clone + Send + 'static {
    type Next;
    fn run(
        self,
        inner: S,
        req: R,
    ) -> impl Future<Output = Result<Response<Body>, Failure>> + Send + 'static;
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

impl<R, T, S> Service<R> for StepService<T, S>
where
    T: Step<S, R>,
    S: Service<T::Next, Response = Response<Body>, Error = Failure> + Clone,
{
    type Response = Response<Body>;
    type Error = Failure;
    type Future = BoxFuture<'static, Result<Response<Body>, Failure>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(self.step.clone().run(ready, req))
    }
}

/// One layer's synchronous work around the inner call, for a request of type `R`.
pub trait Around<S, R>: Clone {
    /// What the inner service takes.
    type Next;
    type Future;
    /// `inner` is ready (the service's `poll_ready` delegated to it).
    fn around(&self, inner: &mut S, req: R) -> Self::Future;
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

impl<R, T, S, E> Service<R> for AroundService<T, S>
where
    T: Around<S, R, Future: Future<Output = Result<Response<Body>, E>>>,
    S: Service<T::Next, Response = Response<Body>, Error = E>,
{
    type Response = Response<Body>;
    type Error = E;
    type Future = T::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.around.around(&mut self.inner, req)
    }
}
