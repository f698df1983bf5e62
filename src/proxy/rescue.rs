//! The rescue boundary: below it every layer returns `Result<Response, GatewayError>`; here
//! an `Err` becomes its problem+json response (through [`GatewayError::into_response`], the
//! one mapping). Above it the error type is `Infallible`.
//!
//! Layers below may ask for headers on whatever response comes out (the per-user
//! `RateLimit` fields) through the [`ResponseHeaders`] put in the request here.

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::future::Future;
use std::pin::Pin;

use http::{Request, Response};
use tower::{Layer, Service};

use super::context::{RequestId, ResponseHeaders, context_mut};
use crate::body::Body;
use crate::error::GatewayError;

#[derive(Debug, Clone, Default)]
pub struct RescueLayer;

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Rescue { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Rescue<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for Rescue<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Rescued<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let ctx = context_mut(&mut req);
        let rid = ctx.request_id.clone();
        let extra = ResponseHeaders::default();
        ctx.response_headers = Some(extra.clone());
        Rescued {
            inner: self.inner.call(req),
            rid,
            extra,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner response, or its error as problem+json; then the recorded headers.
    pub struct Rescued<F> {
        #[pin]
        inner: F,
        rid: Option<RequestId>,
        extra: ResponseHeaders,
    }
}

impl<F> Future for Rescued<F>
where
    F: Future<Output = Result<Response<Body>, GatewayError>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut rsp = match std::task::ready!(this.inner.poll(cx)) {
            Ok(rsp) => rsp,
            Err(e) => e.into_response(this.rid.as_ref().map_or("", RequestId::as_str)),
        };
        this.extra.apply(rsp.headers_mut());
        Poll::Ready(Ok(rsp))
    }
}
