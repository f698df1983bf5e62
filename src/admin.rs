//! The admin listener: `/healthz`, `/readyz`, `/metrics`, `POST /cache/purge`.
//! Never the public port.
//!
//! `/readyz` is 200 once the JWKS has been fetched and 503 while draining, with a JSON body
//! saying which condition holds, and the budget's state as detail (`store`, `mode` —
//! `local`, `shared` or `fallback` —, queue): a Redis outage shows there but keeps the
//! gateway ready, since it falls back to local limiting.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tokio::net::TcpListener;

use crate::auth::jwks::Jwks;
use crate::body::{self, Body};
use crate::budget::Budget;
use crate::cache::ResponseCache;
use crate::telemetry::metrics;

/// What readiness depends on (and what `/readyz` details).
#[derive(Debug)]
pub struct Health {
    pub jwks: Arc<Jwks>,
    pub draining: AtomicBool,
    pub budget: Option<Budget>,
}

impl Health {
    pub fn new(jwks: Arc<Jwks>) -> Self {
        Self {
            jwks,
            draining: AtomicBool::new(false),
            budget: None,
        }
    }

    /// Shows `budget`'s state in `/readyz`.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    pub fn is_ready(&self) -> bool {
        self.jwks.is_ready() && !self.draining.load(Ordering::Acquire)
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut rsp = Response::new(body::full(body.into()));
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    rsp
}

/// Answers one admin request.
pub fn handle<B>(health: &Health, req: &Request<B>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") => {
            let draining = health.draining.load(Ordering::Acquire);
            let jwks = health.jwks.is_ready();
            let ready = jwks && !draining;
            let mut body = serde_json::json!({
                "ready": ready,
                "jwks": if jwks { "fetched" } else { "pending" },
                "draining": draining,
            });
            if let Some(b) = &health.budget {
                body["budget"] = b.status().to_json();
            }
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, "application/json", body.to_string())
        }
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics::render(),
        ),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// `POST /cache/purge?prefix=/api/v1/crm/people`: drops every cached entry whose path is
/// the prefix or lies under it (segment-wise, case-insensitively; `prefix=/` drops all).
/// Answers `{"purged": <entries dropped>, "prefix": "..."}`.
pub async fn purge<B>(cache: &ResponseCache, req: &Request<B>) -> Response<Body> {
    if req.method() != Method::POST {
        let mut rsp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            r#"{"error":"use POST"}"#,
        );
        rsp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return rsp;
    }
    let prefix = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "prefix")
        .map(|(_, v)| v.into_owned());
    let Some(prefix) = prefix.filter(|p| p.starts_with('/')) else {
        return text(
            StatusCode::BAD_REQUEST,
            "application/json",
            r#"{"error":"prefix is required and must start with /"}"#,
        );
    };
    let purged = cache.purge(&prefix).await;
    tracing::info!(prefix = %prefix, purged, "cache purged");
    let body = serde_json::json!({ "purged": purged, "prefix": prefix });
    text(StatusCode::OK, "application/json", body.to_string())
}

/// Connections the admin listener keeps open at once (probes and scrapers need a few).
pub const MAX_CONNECTIONS: usize = 256;

/// Serves the admin endpoints until `shutdown` resolves (then gives requests 1 s), through the
/// same accept loop as the public listener: at most [`MAX_CONNECTIONS`], idle and slow-header
/// connections closed by `limits`.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    cache: Arc<ResponseCache>,
    limits: crate::server::Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let svc = tower::service_fn(move |req: Request<Body>| {
        let health = health.clone();
        let cache = cache.clone();
        // No admin endpoint reads a body.
        let req = req.map(|_| ());
        async move {
            let rsp = if req.uri().path() == "/cache/purge" {
                purge(&cache, &req).await
            } else {
                handle(&health, &req)
            };
            Ok::<_, Infallible>(rsp)
        }
    });
    let limits = crate::server::Limits {
        max_connections: MAX_CONNECTIONS,
        ..limits
    };
    crate::server::serve(listener, svc, limits, shutdown, Duration::from_secs(1)).await;
}
