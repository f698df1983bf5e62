//! `x-request-id`: kept when the client sent a sane one, generated (UUID v4) otherwise; echoed
//! on every response. The id is kept in the request's context; the forwarder puts it on the
//! upstream request (replacing whatever the client sent), so a cache hit never touches the
//! request's headers.
//!
//! # Position in the stack
//! Outermost, so every response — preflights and errors included — carries the id.

use std::convert::Infallible;

use http::{HeaderName, HeaderValue, Request, Response};
use tower::Service;

use super::context::{RequestId, context_mut};
use super::finish::{Finish, Finishing};
use super::step::{Around, AroundLayer};
use crate::body::Body;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

fn generate() -> HeaderValue {
    let id = uuid::Uuid::new_v4();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The request-id step (through [`AroundLayer`]).
#[derive(Debug, Clone, Default)]
pub struct SetRequestId;

/// The layer of [`SetRequestId`].
pub type RequestIdLayer = AroundLayer<SetRequestId>;

impl<S> Around<S, Request<Body>> for SetRequestId
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Next = Request<Body>;
    type Future = Finishing<S::Future, EchoId>;

    fn around(&self, inner: &mut S, mut req: Request<Body>) -> Self::Future {
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(v) if acceptable(v) => v.clone(),
            _ => generate(),
        };
        // The forwarder sets it on the upstream request (a cache hit never builds one).
        context_mut(&mut req).request_id = Some(RequestId(id.clone()));
        Finishing::new(inner.call(req), EchoId(id))
    }
}

/// Puts the request id on the response.
pub struct EchoId(HeaderValue);

impl Finish for EchoId {
    fn finish(self, rsp: &mut Response<Body>) {
        rsp.headers_mut().insert(X_REQUEST_ID.clone(), self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_kept() {
        assert!(acceptable(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(!acceptable(&HeaderValue::from_static("a b")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
        assert_eq!(generate().len(), 36);
    }
}
