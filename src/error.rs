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

/// Marks a response the gateway generated from an error; read by the access log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl GatewayError {
    /// `(status, code, title)` — pinned by the table test below.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", "Bad request"),
            Self::Unauthorized(AuthError::Missing) => {
                (StatusCode::UNAUTHORIZED, "missing_token", "Missing token")
            }
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "invalid_token", "Invalid token"),
            Self::Forbidden(_) | Self::ForbiddenOrigin => {
                (StatusCode::FORBIDDEN, "forbidden", "Forbidden")
            }
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            Self::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "bad_request",
                "Request header fields too large",
            ),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
            ),
            Self::UpstreamBusy { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_busy",
                "Upstream busy",
            ),
            Self::UpstreamUnavailable(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "Upstream unavailable",
            ),
            Self::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "Upstream timeout",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
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
            code,
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
        rsp.extensions_mut().insert(ErrorCode(code));
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
            assert_eq!((s.as_u16(), c), (status, code), "{err:?}");
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
