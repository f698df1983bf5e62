//! Request-scoped values that layers hand to the layers below them.
//!
//! - What the judgement needs travels in the request's *type*: `load_snapshot` makes a
//!   [`Loaded`], `route` a [`Routed`], `authn` an [`Authed`], `policy` a [`Planned`], each a
//!   superset of the one before. A layer asks for the type it needs, so a stack in the wrong
//!   order does not compile, and no layer checks at run time that another ran.
//! - Ambient values that have a meaning (or a default) with a layer absent — the peer, the
//!   request id, the access line's [`Trail`], the response headers asked for below the rescue
//!   boundary, the deadline — live in one request extension, [`RequestContext`]: one
//!   allocation per request and one lookup per layer. Each field is set by exactly one layer
//!   (named on the field) and only read below it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};

use crate::auth::Principal;
use crate::body::Body;
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
    /// Set by `access_log`.
    pub trail: Option<Trail>,
    /// Set by `rescue`.
    pub response_headers: Option<ResponseHeaders>,
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

/// Headers that layers below the rescue boundary want on the final response, whether it is
/// a success or an error (e.g. `RateLimit`). `rescue` applies them.
///
/// A short list, not a `HeaderMap`: a request records two or three fields, and a map would
/// hash and allocate its tables on every request for that.
#[derive(Debug, Clone, Default)]
pub struct ResponseHeaders(Arc<Mutex<Vec<Recorded>>>);

#[derive(Debug)]
struct Recorded {
    name: HeaderName,
    value: HeaderValue,
    /// Only if nothing below set the field.
    default: bool,
}

impl ResponseHeaders {
    /// `name` on the final response, replacing any value it has.
    pub fn insert(&self, name: HeaderName, value: HeaderValue) {
        self.record(name, value, false);
    }

    /// `name` on the final response only if nothing below set it (e.g. `Cache-Status` on the
    /// errors of a cacheable rule, which the cache layer did not answer).
    pub fn insert_default(&self, name: HeaderName, value: HeaderValue) {
        self.record(name, value, true);
    }

    /// A later record of the same name and kind replaces the earlier one.
    fn record(&self, name: HeaderName, value: HeaderValue, default: bool) {
        if let Ok(mut list) = self.0.lock() {
            match list
                .iter_mut()
                .find(|r| r.default == default && r.name == name)
            {
                Some(r) => r.value = value,
                // (a Vec's first allocation already holds four)
                None => list.push(Recorded {
                    name,
                    value,
                    default,
                }),
            }
        }
    }

    /// Moves the recorded headers onto `to`: the set ones replace same-named headers, the
    /// defaults fill in missing ones.
    pub fn apply(&self, to: &mut HeaderMap) {
        if let Ok(mut list) = self.0.lock() {
            for r in std::mem::take(&mut *list) {
                if !r.default || !to.contains_key(&r.name) {
                    to.insert(r.name, r.value);
                }
            }
        }
    }
}

/// Who the request counts against ([`UserKey`]): the caller's `sub`, else the client's IP.
pub fn user_key(caller: Option<&Caller>, addr: Option<&ClientAddr>) -> UserKey {
    UserKey::of(
        caller.and_then(|c| c.principal.sub().cloned()),
        addr.map(|a| a.0.ip()),
    )
}

#[cfg(test)]
mod response_headers_tests {
    use super::*;

    #[test]
    fn set_headers_replace_and_defaults_only_fill_in() {
        let extra = ResponseHeaders::default();
        extra.insert(
            HeaderName::from_static("a"),
            HeaderValue::from_static("set"),
        );
        extra.insert_default(
            HeaderName::from_static("a"),
            HeaderValue::from_static("default"),
        );
        extra.insert_default(
            HeaderName::from_static("b"),
            HeaderValue::from_static("default"),
        );
        extra.insert_default(
            HeaderName::from_static("c"),
            HeaderValue::from_static("default"),
        );
        extra.insert(
            HeaderName::from_static("d"),
            HeaderValue::from_static("first"),
        );
        extra.insert(
            HeaderName::from_static("d"),
            HeaderValue::from_static("second"),
        );
        let mut h = HeaderMap::new();
        h.insert("a", HeaderValue::from_static("below"));
        h.insert("b", HeaderValue::from_static("below"));
        h.insert("d", HeaderValue::from_static("below"));
        extra.apply(&mut h);
        assert_eq!(h["a"], "set");
        assert_eq!(h["b"], "below");
        assert_eq!(h["c"], "default");
        assert_eq!(h.get_all("d").iter().collect::<Vec<_>>(), ["second"]);
        // applied once: the list is emptied
        let mut again = HeaderMap::new();
        extra.apply(&mut again);
        assert!(again.is_empty());
    }
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

/// Facts recorded along the way for the one access line per request.
#[derive(Debug, Default)]
pub struct TrailData {
    pub rule: Option<Arc<str>>,
    pub sub: Option<Arc<str>>,
    pub decision: Decision,
    pub cache: Option<&'static str>,
    pub upstream_status: Option<u16>,
    pub budget_wait: Option<Duration>,
    pub upstream_latency: Option<Duration>,
}

/// A shared handle on the request's [`TrailData`].
#[derive(Debug, Clone, Default)]
pub struct Trail(Arc<Mutex<TrailData>>);

impl Trail {
    pub fn update(&self, f: impl FnOnce(&mut TrailData)) {
        if let Ok(mut d) = self.0.lock() {
            f(&mut d);
        }
    }

    pub fn take(&self) -> TrailData {
        self.0
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }
}

/// Records into the request's trail, if it has one.
pub fn trail<B>(req: &http::Request<B>, f: impl FnOnce(&mut TrailData)) {
    if let Some(t) = context(req).and_then(|c| c.trail.as_ref()) {
        t.update(f);
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
