//! The response future of a layer that only adds to the inner response: it polls the inner
//! future and, once it is ready, runs the layer's [`Finish`] step on the response exactly
//! once. Used by `request_id` (echo the id), `access_log` (line and metrics), `cors`
//! (allow-origin headers), `route` (the rule on the trail) and `user_limit` (`RateLimit`
//! fields), so none of them boxes a future per request. Below the rescue boundary the step
//! also sees an error on its way up ([`Finish::fail`]).
//!
//! If the future is dropped before the inner one is ready (the client went away), the step is
//! dropped without running; steps that must always end something do it in their `Drop`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use crate::body::Body;

/// What a layer does to the inner outcome once it is ready: to a response, or (below the
/// rescue boundary, `E` = [`Failure`](super::context::Failure)) to an error.
pub trait Finish<E = Infallible> {
    fn finish(self, rsp: &mut Response<Body>);
    fn fail(self, _error: &mut E)
    where
        Self: Sized,
    {
    }
}

pin_project_lite::pin_project! {
    /// The inner response, finished by `step` (if any) when it is ready.
    pub struct Finishing<F, D> {
        #[pin]
        inner: F,
        step: Option<D>,
    }
}

impl<F, D> Finishing<F, D> {
    pub fn new(inner: F, step: D) -> Self {
        Self {
            inner,
            step: Some(step),
        }
    }

    /// The inner response as it is.
    pub fn plain(inner: F) -> Self {
        Self { inner, step: None }
    }
}

impl<F, D, E> Future for Finishing<F, D>
where
    F: Future<Output = Result<Response<Body>, E>>,
    D: Finish<E>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut out = std::task::ready!(this.inner.poll(cx));
        if let Some(step) = this.step.take() {
            match &mut out {
                Ok(rsp) => step.finish(rsp),
                Err(e) => step.fail(e),
            }
        }
        Poll::Ready(out)
    }
}
