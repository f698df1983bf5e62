//! The one body type used inside the gateway, and helpers to build it.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error of [`Body`]: a concrete type (not `Box<dyn Error>`) so that service bounds
/// naming `Request<Body>` stay free of trait-object lifetimes, which async blocks handle
/// badly. `source()` is the wrapped error, so error chains can still be inspected.
#[derive(Debug)]
pub struct BodyError(BoxError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "body error: {}", self.0)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The client's request body failed while it was read: bad chunk framing, a body cut short,
/// a connection reset. Wrapped around the client body where it enters the gateway, so a
/// failure anywhere downstream (a streamed upstream request included) can be told apart from
/// a failure of the upstream connection. `source()` is the underlying error.
#[derive(Debug)]
pub struct ClientBodyError(BoxError);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body could not be read: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The client's body, its failures marked as [`ClientBodyError`].
pub fn from_client<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(|e| BodyError(Box::new(ClientBodyError(e.into()))))
        .boxed_unsync()
}

/// Whether `error`'s chain holds a `T`.
pub fn chain_has<T: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(s) = src {
        if s.is::<T>() {
            return true;
        }
        src = s.source();
    }
    false
}

pin_project_lite::pin_project! {
    /// A body that records, in a shared flag, that it was read to its end.
    pub struct Watched<B> {
        #[pin]
        inner: B,
        drained: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }
}

impl<B: http_body::Body> http_body::Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        // A reader may stop at the last frame once `is_end_stream` says so (hyper does for a
        // body of known length), without polling for the end.
        let ended = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.drained
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `body`, and a flag that turns true once it has been read to its end.
pub fn watched(body: Body) -> (Body, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let drained = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = Watched {
        inner: body,
        drained: drained.clone(),
    }
    .boxed_unsync();
    (body, drained)
}

/// A boxed, streaming body: client request bodies, upstream responses, generated bodies.
pub type Body = UnsyncBoxBody<Bytes, BodyError>;

pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body whose error converts to `BoxError`.
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(|e| BodyError(e.into())).boxed_unsync()
}

/// Reads a whole body, failing when it exceeds `limit` bytes.
pub async fn collect_limited(body: Body, limit: usize) -> Result<Bytes, CollectError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(CollectError::TooLarge),
        Err(e) => {
            // An inner limit (the request-body limit) also counts as too large.
            if chain_has::<http_body_util::LengthLimitError>(&*e) {
                return Err(CollectError::TooLarge);
            }
            Err(CollectError::Io(e.to_string()))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectError {
    TooLarge,
    Io(String),
}
