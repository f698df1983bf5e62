//! The `snapshot` layer: loads the live configuration ([`super::snapshot::Live`]) once per
//! request into the request's context, then resolves the client behind a trusted proxy.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::context::{RequestContext, context_mut};
use super::snapshot::Live;
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
