//! The `snapshot` layer: loads the live configuration ([`super::snapshot::Live`]) once per
//! request into the request's context, then resolves the client behind a trusted proxy.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use tower::Service;

use super::context::{Loaded, RequestContext};
use super::snapshot::Live;
use super::step::{Around, AroundLayer};
use crate::body::Body;

/// Loads the live snapshot once and puts the `Arc<Snapshot>` in the request's context;
/// with `[server].trusted_proxies` set, it then attributes the request to the client a trusted
/// proxy names ([`super::client_ip`]), the first thing that needs the configuration.
///
/// # Position in the stack
/// Right after `request_id`, before anything that reads configuration (CORS, routing).
#[derive(Debug, Clone)]
pub struct LoadSnapshot {
    live: Arc<Live>,
}

/// The layer of [`LoadSnapshot`].
pub type LoadSnapshotLayer = AroundLayer<LoadSnapshot>;

impl LoadSnapshotLayer {
    pub fn new(live: Arc<Live>) -> Self {
        AroundLayer(LoadSnapshot { live })
    }
}

impl<S> Around<S, Request<Body>> for LoadSnapshot
where
    S: Service<Loaded, Response = Response<Body>, Error = Infallible>,
{
    type Next = Loaded;
    type Future = S::Future;

    fn around(&self, inner: &mut S, mut req: Request<Body>) -> Self::Future {
        let snapshot = self.live.snapshot();
        let trusted = &snapshot.config.server.trusted_proxies;
        if !trusted.is_empty() {
            let (mut parts, body) = req.into_parts();
            let ctx = parts.extensions.get_or_insert_default::<RequestContext>();
            super::client_ip::resolve(&mut ctx.client, &parts.headers, trusted);
            req = Request::from_parts(parts, body);
        }
        inner.call(Loaded { req, snapshot })
    }
}
