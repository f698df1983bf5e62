//! Reading an upstream body into memory, up to a limit, without ever holding more than that.
//!
//! A `Content-Length` over the limit is refused before a byte is read. A body that turns out
//! longer than announced (or chunked) is read until it passes the limit; what was read is then
//! put back in front of the unread rest, so the response still streams through intact.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{self, Body, BodyError};

/// The outcome of [`read`].
pub enum Buffered {
    /// The whole body, within the limit.
    Full(Bytes),
    /// Longer than the limit: the same body, to be streamed (what was read comes first).
    TooLarge(Body),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The deadline passed before the body ended.
    Timeout,
    /// The upstream connection failed mid-body.
    Io,
}

/// The announced length, if any and well-formed.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads `body` while it fits in `limit` bytes, until `deadline`.
pub async fn read(mut body: Body, limit: usize, deadline: Instant) -> Result<Buffered, ReadError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), body.frame()).await;
        let frame = match next {
            Err(_) => return Err(ReadError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(ReadError::Io),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers are not kept: a JSON API does not send them.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        total = total.saturating_add(data.len());
        chunks.push(data);
        if total > limit {
            let read = concat(chunks, total);
            return Ok(Buffered::TooLarge(body::boxed(Prefixed {
                prefix: Some(read),
                rest: body,
            })));
        }
    }
    Ok(Buffered::Full(concat(chunks, total)))
}

fn concat(mut chunks: Vec<Bytes>, total: usize) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(total);
            for c in chunks {
                out.extend_from_slice(&c);
            }
            out.freeze()
        }
    }
}

/// `prefix`, then the rest of the body.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Body,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        hint.set_lower(hint.lower().saturating_add(extra));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(extra));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body_util::StreamBody;
    use std::time::Duration;

    fn chunked(parts: &[&'static str]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        body::boxed(StreamBody::new(stream::iter(frames)))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn fits_whole() {
        let Ok(Buffered::Full(b)) = read(chunked(&["ab", "cd"]), 4, soon()).await else {
            panic!("expected a full body");
        };
        assert_eq!(&b[..], b"abcd");
    }

    #[tokio::test]
    async fn too_large_streams_everything_back() {
        let Ok(Buffered::TooLarge(rest)) = read(chunked(&["ab", "cd", "ef"]), 3, soon()).await
        else {
            panic!("expected too large");
        };
        let all = rest.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcdef");
    }

    #[tokio::test]
    async fn stalls_past_the_deadline() {
        let pending = body::boxed(StreamBody::new(stream::pending::<
            Result<Frame<Bytes>, std::io::Error>,
        >()));
        let r = read(pending, 10, Instant::now() + Duration::from_millis(20)).await;
        assert!(matches!(r, Err(ReadError::Timeout)));
    }

    #[test]
    fn content_length_header() {
        let mut h = HeaderMap::new();
        assert_eq!(content_length(&h), None);
        h.insert(header::CONTENT_LENGTH, http::HeaderValue::from_static("12"));
        assert_eq!(content_length(&h), Some(12));
    }
}
