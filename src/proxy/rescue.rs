//! The rescue boundary: below it every layer returns `Result<Response, GatewayError>`; here
//! an `Err` becomes its problem+json response (through [`GatewayError::into_response`], the
//! one mapping). Above it the error type is `Infallible`.
//!
//! Layers below may ask for headers on whatever response comes out (the per-user
//! `RateLimit` fields) through the [`ResponseHeaders`] put in the request here.
//!
//! An HTTP/1 request that declares a body and is answered before that body was read to its
//! end (a 413 on its `Content-Length`, a 401, 403 or 404 made before the body mattered) gets
//! `Connection: close`: the server will not read the rest, so the client must not send its
//! next request on this connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use std::future::Future;
use std::pin::Pin;

use http::{HeaderValue, Request, Response, Version, header};
use tower::{Layer, Service};

use super::context::{RequestId, ResponseHeaders, context_mut};
use crate::body::{self, Body};
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
        let drained = if declares_http1_body(&req) {
            let (parts, b) = req.into_parts();
            let (b, drained) = body::watched(b);
            req = Request::from_parts(parts, b);
            Some(drained)
        } else {
            None
        };
        Rescued {
            inner: self.inner.call(req),
            rid,
            extra,
            drained,
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
        // Set for an HTTP/1 request that declared a body: whether it was read to its end.
        drained: Option<Arc<AtomicBool>>,
    }
}

/// An HTTP/1 request with a body: a non-zero `Content-Length`, or any `Transfer-Encoding`.
fn declares_http1_body<B>(req: &Request<B>) -> bool {
    if req.version() > Version::HTTP_11 {
        return false;
    }
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
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
        if this
            .drained
            .as_ref()
            .is_some_and(|d| !d.load(Ordering::Relaxed))
        {
            rsp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(rsp))
    }
}
