//! The simulator's bodies: every response is one buffer; a request body is read whole, up to
//! a limit.

use std::error::Error;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

/// Every response body: one buffer (the simulator never streams).
pub type Body = Full<Bytes>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
}

/// A zero-length body (`Content-Length: 0`).
pub fn empty() -> Body {
    Full::new(Bytes::new())
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectError {
    /// Longer than the limit.
    TooLarge,
    /// The body failed while it was read (a connection reset, bad chunk framing).
    Io(String),
}

/// Reads a whole body, failing when it exceeds `limit` bytes.
pub async fn collect_limited<B>(body: B, limit: usize) -> Result<Bytes, CollectError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(CollectError::TooLarge),
        Err(e) => Err(CollectError::Io(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_up_to_the_limit_and_refuses_beyond_it() {
        assert_eq!(
            collect_limited(full("abcd"), 4).await,
            Ok(Bytes::from_static(b"abcd"))
        );
        assert_eq!(
            collect_limited(full("abcde"), 4).await,
            Err(CollectError::TooLarge)
        );
        assert_eq!(collect_limited(empty(), 0).await, Ok(Bytes::new()));
    }
}
