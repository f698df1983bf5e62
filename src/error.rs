//! `GatewayError`: every failure the gateway itself answers, and the *only* place one becomes
//! an HTTP response (`application/problem+json`, docs/behaviour.md).
//!
//! Inner layers return typed errors that convert into this one with `From`; the rescue layer
//! calls [`GatewayError::into_response`]. Details that could leak (tokens, the API key,
//! upstream bodies) never reach `detail`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::auth::AuthError;
use crate::body::{self, Body};
use crate::rules::Denial;
use crate::rules::canon::PathError;
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized: {0}")]
    Unauthorized(AuthError),
    #[error("forbidden: {0}")]
    Forbidden(Denial),
    #[error("forbidden origin")]
    ForbiddenOrigin,
    #[error("not found")]
    NotFound,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error("upstream busy")]
    UpstreamBusy { retry_after: Duration },
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream timeout")]
    UpstreamTimeout,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AuthError> for GatewayError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable => {
                Self::UpstreamUnavailable("signing keys are not available yet".into())
            }
            e => Self::Unauthorized(e),
        }
    }
}

impl From<Denial> for GatewayError {
    fn from(d: Denial) -> Self {
        if d.is_malformed() {
            Self::BadRequest(d.to_string())
        } else {
            Self::Forbidden(d)
        }
    }
}

impl From<PathError> for GatewayError {
    fn from(e: PathError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<UpstreamError> for GatewayError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Timeout => Self::UpstreamTimeout,
            UpstreamError::BodyTooLarge => Self::PayloadTooLarge,
            UpstreamError::ClientBody => {
                Self::BadRequest("the request body is malformed or was cut short".into())
            }
            UpstreamError::Connect(_) => {
                Self::UpstreamUnavailable("could not connect to Outseta".into())
            }
            UpstreamError::Protocol(_) => {
                Self::UpstreamUnavailable("the connection to Outseta failed".into())
            }
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
    request_id: &'a str,
}

/// The problem's `code`: a closed set, one per kind of failure. It also marks a response the
/// gateway generated from an error (a response extension), which is how the access log tells
/// a refusal from a failure without re-reading the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemCode {
    BadRequest,
    MissingToken,
    InvalidToken,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UpstreamBusy,
    UpstreamUnavailable,
    UpstreamTimeout,
    Internal,
}

impl ProblemCode {
    /// Every code, in the order of docs/reference.md.
    pub const ALL: [ProblemCode; 11] = [
        Self::BadRequest,
        Self::MissingToken,
        Self::InvalidToken,
        Self::Forbidden,
        Self::NotFound,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::UpstreamBusy,
        Self::UpstreamUnavailable,
        Self::UpstreamTimeout,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::UpstreamBusy => "upstream_busy",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Internal => "internal",
        }
    }

    /// The client's request was refused (the access log's `deny`), as opposed to the gateway
    /// or Outseta failing to serve it (`error`).
    pub fn is_refusal(self) -> bool {
        match self {
            Self::BadRequest
            | Self::MissingToken
            | Self::InvalidToken
            | Self::Forbidden
            | Self::NotFound
            | Self::PayloadTooLarge
            | Self::RateLimited => true,
            Self::UpstreamBusy
            | Self::UpstreamUnavailable
            | Self::UpstreamTimeout
            | Self::Internal => false,
        }
    }
}

impl GatewayError {
    /// `(status, code, title)` — pinned by the table test below.
    pub fn parts(&self) -> (StatusCode, ProblemCode, &'static str) {
        match self {
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                ProblemCode::BadRequest,
                "Bad request",
            ),
            Self::Unauthorized(AuthError::Missing) => (
                StatusCode::UNAUTHORIZED,
                ProblemCode::MissingToken,
                "Missing token",
            ),
            Self::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                ProblemCode::InvalidToken,
                "Invalid token",
            ),
            Self::Forbidden(_) | Self::ForbiddenOrigin => {
                (StatusCode::FORBIDDEN, ProblemCode::Forbidden, "Forbidden")
            }
            Self::NotFound => (StatusCode::NOT_FOUND, ProblemCode::NotFound, "Not found"),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ProblemCode::PayloadTooLarge,
                "Payload too large",
            ),
            Self::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ProblemCode::BadRequest,
                "Request header fields too large",
            ),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                ProblemCode::RateLimited,
                "Too many requests",
            ),
            Self::UpstreamBusy { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                ProblemCode::UpstreamBusy,
                "Upstream busy",
            ),
            Self::UpstreamUnavailable(_) => (
                StatusCode::BAD_GATEWAY,
                ProblemCode::UpstreamUnavailable,
                "Upstream unavailable",
            ),
            Self::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                ProblemCode::UpstreamTimeout,
                "Upstream timeout",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ProblemCode::Internal,
                "Internal error",
            ),
        }
    }

    /// The problem's `detail` text: never a token, key, secret or upstream body.
    pub fn detail(&self) -> String {
        match self {
            Self::BadRequest(d) => d.clone(),
            Self::Unauthorized(e) => e.to_string(),
            Self::Forbidden(d) => d.to_string(),
            Self::ForbiddenOrigin => "this origin is not allowed to call the gateway".into(),
            Self::NotFound => "no such route".into(),
            Self::PayloadTooLarge => "the request body exceeds the limit".into(),
            Self::HeadersTooLarge => "the request headers exceed the limit".into(),
            Self::RateLimited { .. } => "too many requests for this user; retry later".into(),
            Self::UpstreamBusy { .. } => {
                "the shared Outseta budget cannot serve this request in time; retry later".into()
            }
            Self::UpstreamUnavailable(d) => d.clone(),
            Self::UpstreamTimeout => "Outseta did not answer in time".into(),
            // Internal details go to the log, not to the client.
            Self::Internal(_) => "internal error".into(),
        }
    }

    /// The single failure → HTTP mapping.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let (status, code, title) = self.parts();
        let detail = self.detail();
        if status.is_server_error() {
            tracing::warn!(error = %self, %status, request_id, "request failed");
        } else {
            tracing::debug!(error = %self, %status, request_id, "request refused");
        }
        let problem = Problem {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            detail: &detail,
            code: code.as_str(),
            request_id,
        };
        let json = serde_json::to_vec(&problem).unwrap_or_default();
        let mut rsp = Response::new(body::full(Bytes::from(json)));
        *rsp.status_mut() = status;
        let h = rsp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::Unauthorized(AuthError::Missing) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unauthorized(e) => {
                // The description is one of our fixed texts: no quotes, no client input.
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Bearer error=\"invalid_token\", error_description=\"{e}\""
                )) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Self::RateLimited { retry_after } | Self::UpstreamBusy { retry_after } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        rsp.extensions_mut().insert(code);
        rsp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_code_table() {
        let cases: Vec<(GatewayError, u16, &str)> = vec![
            (GatewayError::BadRequest("x".into()), 400, "bad_request"),
            (AuthError::Missing.into(), 401, "missing_token"),
            (AuthError::Expired.into(), 401, "invalid_token"),
            (
                AuthError::KeysUnavailable.into(),
                502,
                "upstream_unavailable",
            ),
            (Denial::NoRule.into(), 403, "forbidden"),
            (GatewayError::NotFound, 404, "not_found"),
            (GatewayError::PayloadTooLarge, 413, "payload_too_large"),
            (GatewayError::HeadersTooLarge, 431, "bad_request"),
            (
                GatewayError::RateLimited {
                    retry_after: Duration::from_millis(1500),
                },
                429,
                "rate_limited",
            ),
            (
                GatewayError::UpstreamBusy {
                    retry_after: Duration::from_secs(3),
                },
                503,
                "upstream_busy",
            ),
            (UpstreamError::Timeout.into(), 504, "upstream_timeout"),
            (
                GatewayError::UpstreamUnavailable("x".into()),
                502,
                "upstream_unavailable",
            ),
            (
                GatewayError::Internal("secret detail".into()),
                500,
                "internal",
            ),
        ];
        for (err, status, code) in cases {
            let (s, c, _) = err.parts();
            assert_eq!((s.as_u16(), c.as_str()), (status, code), "{err:?}");
            // the access log's deny/error split follows the status class
            assert_eq!(c.is_refusal(), s.is_client_error(), "{err:?}");
        }
    }

    #[test]
    fn problem_json_and_challenges() {
        let rsp = GatewayError::from(AuthError::Expired).into_response("rid-1");
        assert_eq!(
            rsp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(
            rsp.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"token has expired\""
        );
        let rsp = GatewayError::from(AuthError::Missing).into_response("rid-1");
        assert_eq!(rsp.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let rsp = GatewayError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response("r");
        assert_eq!(rsp.headers()[header::RETRY_AFTER], "2");
    }
}
