//! Request-scoped values that layers hand to the layers below them.
//!
//! - What the judgement needs travels in the request's *type*: `load_snapshot` makes a
//!   [`Loaded`], `route` a [`Routed`], `authn` an [`Authed`], `policy` a [`Planned`], each a
//!   superset of the one before. A layer asks for the type it needs, so a stack in the wrong
//!   order does not compile, and no layer checks at run time that another ran.
//! - Ambient values that have a meaning (or a default) with a layer absent — the peer, the
//!   request id, the deadline — live in one request extension, [`RequestContext`]: one
//!   allocation per request and one lookup per layer. Each field is set by exactly one layer
//!   (named on the field) and only read below it.
//! - What layers learn travels back up with the answer, never through shared state: the
//!   access line's [`Trail`] in the response's extensions, and below the rescue boundary, on
//!   an error, in the [`Failure`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Request, Response};

use crate::auth::Principal;
use crate::body::Body;
use crate::error::GatewayError;
use crate::limits::key::UserKey;
use crate::rules::canon::CanonPath;
use crate::rules::query::Query;
use crate::rules::template::Params;
use crate::rules::{Credential, Rule};
use crate::upstream::headers::Shape;

use super::snapshot::Snapshot;

/// What the outer layers have established about a request: values that have a meaning (or
/// a default) even where a layer is absent, as in embedded or test use. Fields are `None`
/// until their layer has run. What the judgement needs — the matched rule, the caller, the
/// plan — is not here: it travels in the typed requests [`Routed`], [`Authed`] and
/// [`Planned`], so a layer that needs it cannot be stacked above the layer that makes it.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The peer. Set by the server's accept loop; `load_snapshot` replaces it with the client a
    /// trusted proxy names.
    pub client: Option<ClientAddr>,
    /// Set by `request_id`.
    pub request_id: Option<RequestId>,
    /// Set by `timeout`.
    pub deadline: Option<Deadline>,
}

/// The request's context, if a layer has set any of it.
pub fn context<B>(req: &Request<B>) -> Option<&RequestContext> {
    req.extensions().get::<RequestContext>()
}

/// The request's context, created empty on first use.
pub fn context_mut<B>(req: &mut Request<B>) -> &mut RequestContext {
    req.extensions_mut()
        .get_or_insert_default::<RequestContext>()
}

/// `x-request-id`, kept from the client or generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
}

/// The peer address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// When the request's overall deadline (`server.request_timeout`) passes. Read by the
/// forwarder so that queueing for the budget never outlives it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub tokio::time::Instant);

/// Who the request counts against ([`UserKey`]): the caller's `sub`, else the client's IP.
pub fn user_key(caller: Option<&Caller>, addr: Option<&ClientAddr>) -> UserKey {
    UserKey::of(
        caller.and_then(|c| c.principal.sub().cloned()),
        addr.map(|a| a.0.ip()),
    )
}

/// The matched rule, and what routing read off the request for it.
#[derive(Debug, Clone)]
pub struct Matched {
    pub rule: Arc<Rule>,
    pub params: Params,
    pub path: CanonPath,
    pub query: Query,
}

/// A request past `load_snapshot`: the one configuration it is judged by, whatever reload
/// happens while it runs.
#[derive(Debug)]
pub struct Loaded {
    pub req: Request<Body>,
    pub snapshot: Arc<Snapshot>,
}

/// The HTTP request inside a request on its way through the stack, for the layers that only
/// need the request itself (`rescue`).
pub trait HasRequest {
    fn http(&self) -> &Request<Body>;
    fn http_mut(&mut self) -> &mut Request<Body>;
}

impl HasRequest for Request<Body> {
    fn http(&self) -> &Request<Body> {
        self
    }
    fn http_mut(&mut self) -> &mut Request<Body> {
        self
    }
}

impl HasRequest for Loaded {
    fn http(&self) -> &Request<Body> {
        &self.req
    }
    fn http_mut(&mut self) -> &mut Request<Body> {
        &mut self.req
    }
}

/// A request past `route`: judged by `snapshot`, matched to a rule.
#[derive(Debug)]
pub struct Routed {
    pub req: Request<Body>,
    pub snapshot: Arc<Snapshot>,
    pub matched: Matched,
}

/// A request past `authn`: the caller is known (anonymous for `auth = "none"`).
#[derive(Debug)]
pub struct Authed {
    pub req: Request<Body>,
    pub snapshot: Arc<Snapshot>,
    pub matched: Matched,
    pub caller: Caller,
}

/// A request past `policy`: judged, with what goes upstream.
#[derive(Debug)]
pub struct Planned {
    pub req: Request<Body>,
    pub snapshot: Arc<Snapshot>,
    pub matched: Matched,
    pub caller: Caller,
    pub plan: Plan,
}

impl Routed {
    pub fn authed(self, caller: Caller) -> Authed {
        Authed {
            req: self.req,
            snapshot: self.snapshot,
            matched: self.matched,
            caller,
        }
    }
}

impl Authed {
    pub fn planned(self, plan: Plan) -> Planned {
        Planned {
            req: self.req,
            snapshot: self.snapshot,
            matched: self.matched,
            caller: self.caller,
            plan,
        }
    }
}

/// The verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    /// The caller's own `Authorization` value, kept only for `credential = "user"` rules.
    pub bearer: Option<HeaderValue>,
}

/// What goes upstream. Read by the cache and the forwarder.
#[derive(Debug, Clone)]
pub struct Plan {
    pub method: Method,
    /// Canonical path, exactly as judged.
    pub path: String,
    /// Encoded query after `query_set`, exactly as judged.
    pub query: Option<String>,
    pub credential: Credential,
    pub rule_name: Arc<str>,
    /// What the upstream request's headers depend on (caching, a rewritten body, a response
    /// the gateway reads).
    pub shape: Shape,
}

impl Plan {
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }
}

/// How the request was decided, for the access line and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decision {
    #[default]
    Error,
    Allow,
    Deny,
    Preflight,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Preflight => "preflight",
        }
    }
}

/// What the layers learned about a request, for its one access line. It travels back up with
/// the answer — in the response's extensions ([`trail_of`]), or in the [`Failure`] below the
/// rescue boundary — and the access log takes it off the final response.
#[derive(Debug, Clone, Default)]
pub struct Trail {
    pub rule: Option<Arc<str>>,
    pub sub: Option<Arc<str>>,
    pub decision: Decision,
    pub cache: Option<&'static str>,
    pub upstream_status: Option<u16>,
    pub budget_wait: Option<Duration>,
    pub upstream_latency: Option<Duration>,
}

/// The trail on `rsp`, created empty on first use.
pub fn trail_of(rsp: &mut Response<Body>) -> &mut Trail {
    rsp.extensions_mut().get_or_insert_default::<Trail>()
}

impl Trail {
    /// Fills in what `other` knows and this trail does not.
    pub fn merge(&mut self, other: Trail) {
        self.rule = self.rule.take().or(other.rule);
        self.sub = self.sub.take().or(other.sub);
        self.cache = self.cache.or(other.cache);
        self.upstream_status = self.upstream_status.or(other.upstream_status);
        self.budget_wait = self.budget_wait.or(other.budget_wait);
        self.upstream_latency = self.upstream_latency.or(other.upstream_latency);
    }
}

/// The error of the layers below the rescue boundary: the [`GatewayError`] to answer with,
/// what the layers it passed learned ([`Trail`]), and headers they want on the answer whatever
/// it is (the per-user `RateLimit` fields, `Cache-Status` of a cacheable rule). `rescue`
/// turns it into the problem+json response; nothing else does.
#[derive(Debug)]
pub struct Failure {
    pub error: GatewayError,
    /// Boxed, and only once a layer adds something: most refusals carry nothing more, and a
    /// `Result` with a large error makes every layer's future larger.
    learned: Option<Box<Learned>>,
}

#[derive(Debug, Default)]
struct Learned {
    trail: Trail,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Failure {
    /// `error`, with what the call that failed learned.
    pub fn with_trail(error: GatewayError, trail: Trail) -> Self {
        Self {
            error,
            learned: Some(Box::new(Learned {
                trail,
                headers: Vec::new(),
            })),
        }
    }

    pub fn trail_mut(&mut self) -> &mut Trail {
        &mut self.learned.get_or_insert_default().trail
    }

    /// Adds `name: value` to the answer (replacing an earlier value of the same name).
    pub fn header(&mut self, name: HeaderName, value: HeaderValue) {
        let headers = &mut self.learned.get_or_insert_default().headers;
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
    }

    /// The error, the trail and the headers.
    pub fn into_parts(self) -> (GatewayError, Trail, Vec<(HeaderName, HeaderValue)>) {
        let learned = self.learned.map(|l| *l).unwrap_or_default();
        (self.error, learned.trail, learned.headers)
    }
}

impl<E: Into<GatewayError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            error: e.into(),
            learned: None,
        }
    }
}

#[cfg(test)]
mod user_key_tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn sub_first_then_ip() {
        let addr = ClientAddr(SocketAddr::from(([10, 0, 0, 7], 5555)));
        let anon = Caller {
            principal: Arc::new(Principal::anonymous()),
            bearer: None,
        };
        let p = Principal {
            claims: crate::rules::expr::claims_value(&serde_json::json!({"sub": "P1"})),
            ..Principal::anonymous()
        };
        let user = Caller {
            principal: Arc::new(p),
            bearer: None,
        };
        assert_eq!(
            user_key(Some(&user), Some(&addr)),
            UserKey::Sub("P1".into())
        );
        assert_eq!(
            user_key(Some(&anon), Some(&addr)),
            UserKey::Ip([10, 0, 0, 7].into())
        );
        assert_eq!(user_key(None, None), UserKey::Unknown);
    }
}
