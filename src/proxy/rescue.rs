//! The rescue boundary: below it every layer returns `Result<Response, Failure>`; here
//! a [`Failure`] becomes its problem+json response (through [`GatewayError::into_response`](crate::error::GatewayError::into_response), the
//! one mapping). Above it the error type is `Infallible`.
//!
//! That holds for readiness too: an `Err` from the inner `poll_ready` is kept, readiness is
//! reported, and the `call` that follows answers with that error without calling the inner
//! service (which the error says may not be called). The server clones the stack for each
//! request, so the failed instance serves exactly that one request.
//!
//! A failure's headers (the per-user `RateLimit` fields, a cacheable rule's `Cache-Status`)
//! are set on its response, and its trail becomes the response's, for the access log.
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

use futures_util::future::Either;
use http::{HeaderValue, Request, Response, Version, header};
use tower::{Layer, Service};

use super::context::{Failure, HasRequest, RequestId, context};
use crate::body::{self, Body};

#[derive(Debug, Clone, Default)]
pub struct RescueLayer;

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Rescue {
            inner,
            not_ready: None,
        }
    }
}

#[derive(Debug)]
pub struct Rescue<S> {
    inner: S,
    // The inner `poll_ready` error, answered by the next `call`.
    not_ready: Option<Failure>,
}

// A clone has not been polled: it starts without a readiness error.
impl<S: Clone> Clone for Rescue<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            not_ready: None,
        }
    }
}

type Failed = std::future::Ready<Result<Response<Body>, Failure>>;

impl<R, S> Service<R> for Rescue<S>
where
    R: HasRequest,
    S: Service<R, Response = Response<Body>, Error = Failure>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Rescued<Either<S::Future, Failed>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.not_ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                self.not_ready = Some(e);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        let http = req.http_mut();
        let rid = context(http).and_then(|c| c.request_id.clone());
        let drained = if declares_http1_body(http) {
            let b = std::mem::replace(http.body_mut(), body::empty());
            let (b, drained) = body::watched(b);
            *http.body_mut() = b;
            Some(drained)
        } else {
            None
        };
        let inner = match self.not_ready.take() {
            Some(e) => Either::Right(std::future::ready(Err(e))),
            None => Either::Left(self.inner.call(req)),
        };
        Rescued {
            inner,
            rid,
            drained,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner response, or its failure as problem+json with the failure's headers and
    /// trail.
    pub struct Rescued<F> {
        #[pin]
        inner: F,
        rid: Option<RequestId>,
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
    F: Future<Output = Result<Response<Body>, Failure>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut rsp = match std::task::ready!(this.inner.poll(cx)) {
            Ok(rsp) => rsp,
            Err(f) => {
                let (error, trail, headers) = f.into_parts();
                let mut rsp = error.into_response(this.rid.as_ref().map_or("", RequestId::as_str));
                for (name, value) in headers {
                    rsp.headers_mut().insert(name, value);
                }
                rsp.extensions_mut().insert(trail);
                rsp
            }
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::GatewayError;
    use http::StatusCode;
    use std::future::poll_fn;
    use std::sync::atomic::AtomicUsize;

    /// Fails readiness once, then is ready; counts calls.
    #[derive(Clone)]
    struct NotReadyOnce {
        failed: Arc<AtomicBool>,
        calls: Arc<AtomicUsize>,
    }

    impl Service<Request<Body>> for NotReadyOnce {
        type Response = Response<Body>;
        type Error = Failure;
        type Future = std::future::Ready<Result<Response<Body>, Failure>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Failure>> {
            if self.failed.swap(true, Ordering::SeqCst) {
                Poll::Ready(Ok(()))
            } else {
                Poll::Ready(Err(
                    GatewayError::UpstreamUnavailable("not ready".into()).into()
                ))
            }
        }

        fn call(&mut self, _: Request<Body>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(Response::new(body::empty())))
        }
    }

    fn get() -> Request<Body> {
        Request::new(body::empty())
    }

    #[tokio::test]
    async fn a_readiness_error_answers_the_next_call_without_calling_inner() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = RescueLayer.layer(NotReadyOnce {
            failed: Arc::new(AtomicBool::new(false)),
            calls: calls.clone(),
        });

        poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let rsp = svc.call(get()).await.unwrap();
        assert_eq!(rsp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            rsp.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // The error is answered once; the next readiness is the inner service's again.
        poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let rsp = svc.call(get()).await.unwrap();
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
