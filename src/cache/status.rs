//! What the cache did for one response: the `Cache-Status` value (the exact forms of docs/behaviour.md, "On the wire"), the
//! label in the access line (`Trail::cache`) and the metrics.

use std::sync::Arc;

use http::HeaderValue;

use crate::error::GatewayError;
use crate::telemetry::handles as h;
use crate::telemetry::metrics as m;

/// Why a stale entry was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// Past its ttl, within `stale_while_revalidate`: one background refresh is running.
    Revalidating,
    /// Upstream answered 5xx, refused or broke the connection.
    UpstreamError,
    /// Upstream (or a coalesced leader) did not answer in time.
    UpstreamTimeout,
    /// The shared budget could not serve in time, or Outseta answered 429.
    UpstreamBusy,
}

impl StaleReason {
    /// The failure of an upstream call that stale serving may cover; `None` for the caller's
    /// own faults and internal errors.
    pub fn from_error(e: &GatewayError) -> Option<Self> {
        match e {
            GatewayError::UpstreamTimeout => Some(Self::UpstreamTimeout),
            GatewayError::UpstreamUnavailable(_) => Some(Self::UpstreamError),
            GatewayError::UpstreamBusy { .. } => Some(Self::UpstreamBusy),
            _ => None,
        }
    }

    /// The failure a response status stands for: 5xx, or 429 (Outseta's own rate limit).
    pub fn from_status(status: http::StatusCode) -> Option<Self> {
        if status.is_server_error() {
            Some(Self::UpstreamError)
        } else if status == http::StatusCode::TOO_MANY_REQUESTS {
            Some(Self::UpstreamBusy)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revalidating => "revalidating",
            Self::UpstreamError => "upstream-error",
            Self::UpstreamTimeout => "upstream-timeout",
            Self::UpstreamBusy => "upstream-busy",
        }
    }
}

/// `outseta-gateway; fwd=bypass`: an answer not stored — and, registered by `route`, the
/// default for the responses of a cacheable rule that the cache layer did not make (denials,
/// limits, errors).
pub fn bypass_value() -> HeaderValue {
    HeaderValue::from_static("outseta-gateway; fwd=bypass")
}

/// Why an upstream answer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// Not a GET.
    Method,
    /// Not a 200.
    Status,
    /// `Cache-Control: no-store` or `private`.
    NoStore,
    /// `Vary` on a request header the key does not cover.
    Vary,
    /// A `Content-Encoding` other than identity.
    Encoded,
    /// Larger than 1/16 of `max_size`.
    TooLarge,
    /// An invalidation of its path ran while it was being fetched.
    Invalidated,
}

impl BypassReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::NoStore => "no_store",
            Self::Vary => "vary",
            Self::Encoded => "encoded",
            Self::TooLarge => "too_large",
            Self::Invalidated => "invalidated",
        }
    }
}

/// The cache's part in one response of a cacheable rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Fresh entry; `ttl` = whole seconds of freshness left.
    Hit {
        ttl: u64,
    },
    /// This request's upstream call, stored.
    Stored,
    /// Answered by another request's upstream call.
    Collapsed,
    Stale(StaleReason),
    Bypass(BypassReason),
}

impl CacheStatus {
    /// The `Cache-Status` header value, exactly as docs/behaviour.md spells it.
    pub fn header_value(self) -> HeaderValue {
        match self {
            Self::Hit { ttl } => hit_value(ttl),
            Self::Stored => HeaderValue::from_static("outseta-gateway; fwd=miss; stored"),
            Self::Collapsed => HeaderValue::from_static("outseta-gateway; fwd=miss; collapsed"),
            Self::Stale(r) => HeaderValue::from_static(match r {
                StaleReason::Revalidating => "outseta-gateway; fwd=stale; detail=revalidating",
                StaleReason::UpstreamError => "outseta-gateway; fwd=stale; detail=upstream-error",
                StaleReason::UpstreamTimeout => {
                    "outseta-gateway; fwd=stale; detail=upstream-timeout"
                }
                StaleReason::UpstreamBusy => "outseta-gateway; fwd=stale; detail=upstream-busy",
            }),
            Self::Bypass(_) => bypass_value(),
        }
    }

    /// The access line's `cache` field.
    pub fn label(self) -> &'static str {
        match self {
            Self::Hit { .. } => "hit",
            Self::Stored => "miss",
            Self::Collapsed => "collapsed",
            Self::Stale(StaleReason::Revalidating) => "stale-revalidating",
            Self::Stale(StaleReason::UpstreamError) => "stale-upstream-error",
            Self::Stale(StaleReason::UpstreamTimeout) => "stale-upstream-timeout",
            Self::Stale(StaleReason::UpstreamBusy) => "stale-upstream-busy",
            Self::Bypass(_) => "bypass",
        }
    }

    /// Counts it. (Misses are counted where the upstream call is made, whatever its outcome.)
    pub fn count(self, rule: &Arc<str>) {
        let counted = match self {
            Self::Hit { .. } => Some((m::CACHE_HITS, "")),
            Self::Stored => Some((m::CACHE_STORED, "")),
            Self::Collapsed => Some((m::CACHE_COLLAPSED, "")),
            Self::Stale(r) => Some((m::CACHE_STALE, r.as_str())),
            Self::Bypass(BypassReason::Method) => None,
            Self::Bypass(r) => Some((m::CACHE_BYPASS, r.as_str())),
        };
        if let Some((name, reason)) = counted {
            h::CACHE
                .get((h::Label(name), h::RuleKey(rule.clone()), h::Label(reason)))
                .increment(1);
        }
    }
}

/// `outseta-gateway; hit; ttl=<n>` in one allocation (the header value's own).
fn hit_value(ttl: u64) -> HeaderValue {
    const PREFIX: &[u8] = b"outseta-gateway; hit; ttl=";
    let mut digits = [0u8; 20];
    let mut n = ttl;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut v = Vec::with_capacity(PREFIX.len() + digits.len() - i);
    v.extend_from_slice(PREFIX);
    v.extend_from_slice(&digits[i..]);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
        .unwrap_or(HeaderValue::from_static("outseta-gateway; hit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_the_spec_forms() {
        assert_eq!(
            CacheStatus::Hit { ttl: 42 }.header_value(),
            "outseta-gateway; hit; ttl=42"
        );
        assert_eq!(
            CacheStatus::Hit { ttl: 0 }.header_value(),
            "outseta-gateway; hit; ttl=0"
        );
        assert_eq!(
            CacheStatus::Hit { ttl: u64::MAX }.header_value(),
            "outseta-gateway; hit; ttl=18446744073709551615"
        );
        assert_eq!(
            CacheStatus::Stored.header_value(),
            "outseta-gateway; fwd=miss; stored"
        );
        assert_eq!(
            CacheStatus::Collapsed.header_value(),
            "outseta-gateway; fwd=miss; collapsed"
        );
        assert_eq!(
            CacheStatus::Stale(StaleReason::UpstreamError).header_value(),
            "outseta-gateway; fwd=stale; detail=upstream-error"
        );
        assert_eq!(
            CacheStatus::Bypass(BypassReason::NoStore).header_value(),
            "outseta-gateway; fwd=bypass"
        );
    }

    #[test]
    fn stale_reasons_from_errors_and_statuses() {
        use std::time::Duration;
        assert_eq!(
            StaleReason::from_error(&GatewayError::UpstreamTimeout),
            Some(StaleReason::UpstreamTimeout)
        );
        assert_eq!(
            StaleReason::from_error(&GatewayError::UpstreamBusy {
                retry_after: Duration::from_secs(1)
            }),
            Some(StaleReason::UpstreamBusy)
        );
        assert_eq!(StaleReason::from_error(&GatewayError::NotFound), None);
        assert_eq!(
            StaleReason::from_status(http::StatusCode::BAD_GATEWAY),
            Some(StaleReason::UpstreamError)
        );
        assert_eq!(
            StaleReason::from_status(http::StatusCode::TOO_MANY_REQUESTS),
            Some(StaleReason::UpstreamBusy)
        );
        assert_eq!(StaleReason::from_status(http::StatusCode::NOT_FOUND), None);
    }
}
