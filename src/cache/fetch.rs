//! Turning the result of an upstream call into something the cache can store or share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Response;

use super::buffer::{self, Buffered, ReadError};
use super::control;
use super::entry::{self, Entry};
use super::status::BypassReason;
use super::store::Store;
use crate::body::Body;
use crate::error::GatewayError;

/// What a leader's (or a background refresh's) upstream call came to.
pub enum Fetched {
    /// The call failed, or the body could not be read.
    Failed(GatewayError),
    /// Too large to buffer: stream it to the caller; nobody else can have it.
    Streamed(Response<Body>),
    /// Buffered; `Ok(())` if it may be stored, else why not.
    Buffered(Arc<Entry>, Result<(), BypassReason>),
}

/// How an answer is kept once buffered.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub ttl: Duration,
    /// Kept this long past `ttl` for stale serving.
    pub stale_window: Duration,
}

/// Reads the answer's body (bounded by what one entry may weigh under `key_len`, and by
/// `deadline`) and classifies it.
pub async fn settle(
    store: &Store,
    key_len: usize,
    result: Result<Response<Body>, GatewayError>,
    life: Lifetime,
    deadline: Instant,
) -> Fetched {
    let rsp = match result {
        Ok(r) => r,
        Err(e) => return Fetched::Failed(e),
    };
    let (parts, body) = rsp.into_parts();
    let storable = control::storable(parts.status, &parts.headers);
    let head = entry::weight(key_len, parts.headers.iter(), 0);
    let limit = store.max_entry().saturating_sub(head);
    if buffer::content_length(&parts.headers).is_some_and(|n| n > limit) {
        return Fetched::Streamed(Response::from_parts(parts, body));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match buffer::read(body, limit, deadline).await {
        Err(ReadError::Timeout) => Fetched::Failed(GatewayError::UpstreamTimeout),
        Err(ReadError::Io) => Fetched::Failed(GatewayError::UpstreamUnavailable(
            "the response could not be read".into(),
        )),
        Ok(Buffered::TooLarge(body)) => Fetched::Streamed(Response::from_parts(parts, body)),
        Ok(Buffered::Full(bytes)) => {
            // A body that may be stored gets an exactly-sized buffer of its own, shared with
            // the header values (`entry::own`): a single frame from hyper is a slice of the
            // connection's read buffer. What only followers see is used as it is.
            let (keep, id) = (life.ttl + life.stale_window, store.next_id());
            let e = if storable.is_ok() {
                Entry::owned(parts.status, &parts.headers, &bytes, life.ttl, keep, id)
            } else {
                Entry::new(parts.status, &parts.headers, bytes, life.ttl, keep, id)
            };
            Fetched::Buffered(Arc::new(e), storable)
        }
    }
}
