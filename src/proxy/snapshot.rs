//! The configuration a request sees: one `Arc<Snapshot>`, loaded once per request from
//! [`Live`] and kept in the request's context, so a request never mixes two configs.
//!
//! Stateful components (token caches, JWKS, the response cache, the budget, the connection
//! pool) live outside the snapshot, so swapping it (reload) keeps them.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::config::Config;

/// Precomputed CORS header values.
#[derive(Debug)]
pub struct CorsPolicy {
    pub origins: Vec<String>,
    pub allow_headers: HeaderValue,
    pub max_age: HeaderValue,
}

#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub cors: CorsPolicy,
}

impl Snapshot {
    pub fn new(config: Arc<Config>) -> Self {
        let headers: Vec<&str> = config
            .cors
            .allowed_headers
            .iter()
            .map(|h| h.as_str())
            .collect();
        let cors = CorsPolicy {
            origins: config.cors.allowed_origins.clone(),
            allow_headers: HeaderValue::from_str(&headers.join(", "))
                .unwrap_or(HeaderValue::from_static("authorization")),
            max_age: HeaderValue::from(config.cors.max_age.as_secs()),
        };
        Self { config, cors }
    }
}

/// The live snapshot; `replace` swaps it atomically.
#[derive(Debug)]
pub struct Live(ArcSwap<Snapshot>);

impl Live {
    pub fn new(s: Snapshot) -> Self {
        Self(ArcSwap::from_pointee(s))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub fn replace(&self, next: Snapshot) {
        self.0.store(Arc::new(next));
    }
}

// === LoadSnapshotLayer ===

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::context::{RequestContext, context_mut};
use crate::body::Body;

/// Loads the live snapshot once and puts the `Arc<Snapshot>` in the request's context;
/// with `[server].trusted_proxies` set, it then attributes the request to the client a trusted
/// proxy names ([`super::client_ip`]), the first thing that needs the configuration.
///
/// # Position in the stack
/// Right after `request_id`, before anything that reads configuration (CORS, routing).
#[derive(Debug, Clone)]
pub struct LoadSnapshotLayer {
    live: Arc<Live>,
}

impl LoadSnapshotLayer {
    pub fn new(live: Arc<Live>) -> Self {
        Self { live }
    }
}

impl<S> Layer<S> for LoadSnapshotLayer {
    type Service = LoadSnapshot<S>;
    fn layer(&self, inner: S) -> Self::Service {
        LoadSnapshot {
            inner,
            live: self.live.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadSnapshot<S> {
    inner: S,
    live: Arc<Live>,
}

impl<S> Service<Request<Body>> for LoadSnapshot<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let snapshot = self.live.snapshot();
        let trusted = &snapshot.config.server.trusted_proxies;
        if !trusted.is_empty() {
            let (mut parts, body) = req.into_parts();
            let ctx = parts.extensions.get_or_insert_default::<RequestContext>();
            super::client_ip::resolve(&mut ctx.client, &parts.headers, trusted);
            req = Request::from_parts(parts, body);
        }
        context_mut(&mut req).snapshot = Some(snapshot);
        self.inner.call(req)
    }
}
