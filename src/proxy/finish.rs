//! The response future of a layer that only adds to the inner response: it polls the inner
//! future and, once it is ready, runs the layer's [`Finish`] step on the response exactly
//! once. Used by `request_id` (echo the id), `access_log` (line and metrics) and `cors`
//! (allow-origin headers), so none of them boxes a future per request.
//!
//! If the future is dropped before the inner one is ready (the client went away), the step is
//! dropped without running; steps that must always end something do it in their `Drop`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use crate::body::Body;

/// What a layer does to the inner response once it is ready.
pub trait Finish {
    fn finish(self, rsp: &mut Response<Body>);
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

impl<F, D> Future for Finishing<F, D>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
    D: Finish,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut rsp) = std::task::ready!(this.inner.poll(cx));
        if let Some(step) = this.step.take() {
            step.finish(&mut rsp);
        }
        Poll::Ready(Ok(rsp))
    }
}
