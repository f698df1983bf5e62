//! The request path, composed once.
//!
//! Every request flows one way through [`stack`]; the order below is the whole design:
//!
//! | layer | why here |
//! |---|---|
//! | `request_id` | outermost: every response, preflights and errors included, carries the id |
//! | `load_snapshot` | one configuration per request (reload-safe); then the client behind a trusted proxy (`client_ip`) |
//! | `access_log` | one line + metrics for everything below, errors included |
//! | `cors` | preflights answered without a token; CORS headers on error responses too |
//! | `rescue` | the rescue boundary: `GatewayError` → problem+json, nowhere else |
//! | `route` | limits, path safety and the rule match come before any work |
//! | `timeout` | one deadline for auth (JWKS refetch), policy and upstream |
//! | `authn` | the rule's `auth` mode decides whether a token is needed |
//! | `user_limit` | needs the caller (`sub`, else IP); before policy and cache, so every request counts |
//! | `policy` | needs the caller; runs before the cache so every answer is judged |
//! | `cache` | after policy (the key is the judged upstream request; hits are judged too); coalesces misses, serves stale, invalidates after writes |
//! | `forward` | terminal: budget permit (API key only), credential swap, the upstream call |
//!
//! Layers talk only through the request: its type carries what the judgement needs
//! ([`context::Loaded`] → [`context::Routed`] → [`context::Authed`] → [`context::Planned`]),
//! its [`context::RequestContext`] extension the ambient values. Every layer is a
//! [`step::Step`] or a [`step::Around`].

pub mod access_log;
pub mod authn;
pub mod cache;
pub mod client_ip;
pub mod context;
pub mod cors;
pub mod finish;
pub mod forward;
pub mod load_snapshot;
pub mod policy;
pub mod request_id;
pub mod rescue;
pub mod route;
pub mod snapshot;
pub mod step;
pub mod timeout;
pub mod user_limit;

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use tower::{Service, ServiceBuilder};

use crate::auth::verify::Verifier;
use crate::body::Body;
use crate::cache::ResponseCache;
use crate::limits::user::UserLimiter;

/// What the stack is built from.
pub struct Parts {
    pub live: Arc<snapshot::Live>,
    pub verifier: Arc<Verifier>,
    pub cache: Arc<ResponseCache>,
    pub user_limit: Arc<UserLimiter>,
    pub forward: forward::Forward,
}

/// The gateway service: `Request<Body>` in, a response out, never an error.
pub fn stack(
    p: Parts,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .layer(request_id::RequestIdLayer::default())
        .layer(load_snapshot::LoadSnapshotLayer::new(p.live))
        .layer(access_log::AccessLogLayer::default())
        .layer(cors::CorsLayer::default())
        .layer(rescue::RescueLayer)
        .layer(route::RouteLayer::default())
        .layer(timeout::RequestTimeoutLayer::default())
        .layer(authn::AuthnLayer::new(p.verifier))
        .layer(user_limit::UserLimitLayer::new(p.user_limit))
        .layer(policy::PolicyLayer::new())
        .layer(cache::CacheLayer::new(p.cache))
        .service(p.forward)
}
