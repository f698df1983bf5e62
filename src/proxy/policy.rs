//! Policy: the matched rule's conditions and rewrites, applied for this caller.
//!
//! # Position in the stack
//! After auth (needs [`Caller`]); before the cache and the forwarder, so every request —
//! cache hits included — is judged, and `response_when` runs on every response before a
//! byte of it is sent.
//!
//! # Guarantees
//! - `when` false or failing, a forced value that cannot be computed, a disallowed query key,
//!   `fields` path or body field: 403 and nothing goes upstream; a malformed `fields` value:
//!   400.
//! - A body rule buffers the body (bounded by `max_request_body`) and forwards the rewritten
//!   JSON; a non-JSON or non-object body is 400.
//! - A rule's `precheck` is a GET made through the layers below (so it takes a budget
//!   permit like any API-key call) before the write moves on: a non-2xx answer is returned
//!   as it is, a 2xx whose `when` is false or fails is 403, and in both cases nothing is
//!   written.
//! - `response_when` buffers 2xx responses (bounded by [`MAX_INSPECTED_RESPONSE`]) and
//!   answers 403 without any of the upstream body when it does not hold. Non-2xx responses
//!   are Outseta's own errors and pass through unchanged.

use std::future::Future;
use std::sync::Arc;

use http::{Method, Request, Response, header};
use tower::{Service, ServiceExt};

use super::context::{Authed, Caller, Failure, Matched, Plan, Planned, RequestContext};
use super::snapshot::Snapshot;
use super::step::{Step, StepLayer};
use crate::body::{self, Body, CollectError};
use crate::error::GatewayError;
use crate::rules::expr::Input;
use crate::rules::{BodyOutcome, Denial};
use crate::telemetry::metrics as m;
use crate::upstream::headers::Shape;

/// Largest response body `response_when` will read.
pub const MAX_INSPECTED_RESPONSE: usize = 16 << 20;

/// The policy step (through [`StepLayer`]).
#[derive(Debug, Clone, Default)]
pub struct Policy;

/// The layer of [`Policy`].
pub type PolicyLayer = StepLayer<Policy>;

impl PolicyLayer {
    pub fn new() -> Self {
        StepLayer(Policy)
    }
}

impl Default for PolicyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Step<S, Authed> for Policy
where
    S: Service<Planned, Response = Response<Body>, Error = Failure> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Next = Planned;

    fn run(
        self,
        inner: S,
        req: Authed,
    ) -> impl Future<Output = Result<Response<Body>, Failure>> + Send + 'static {
        apply(inner, req)
    }
}

async fn apply<S>(mut inner: S, authed: Authed) -> Result<Response<Body>, Failure>
where
    S: Service<Planned, Response = Response<Body>, Error = Failure> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let Authed {
        req,
        snapshot,
        matched,
        caller,
    } = authed;
    let rule = matched.rule.clone();
    let rules = &snapshot.config.rules;
    let method = req.method().clone();
    let input = Input {
        claims: &caller.principal.claims,
        params: &matched.params,
        query: &matched.query,
        method: method.as_str(),
    };
    let query = rule.authorize(rules.root(), &input)?;

    let (parts, body) = req.into_parts();
    let rewrites = rule.rewrites_body(&method);
    let body = if rewrites {
        let limit = usize::try_from(snapshot.config.server.max_request_body).unwrap_or(usize::MAX);
        let bytes = body::collect_limited(body, limit)
            .await
            .map_err(|e| match e {
                CollectError::TooLarge => GatewayError::PayloadTooLarge,
                CollectError::Io(_) => {
                    GatewayError::BadRequest("the request body could not be read".into())
                }
            })?;
        let rewritten = rule
            .rewrite_body(rules.root(), &input, &bytes)
            .map_err(|o| match o {
                BodyOutcome::Invalid(msg) => GatewayError::BadRequest(msg),
                BodyOutcome::Denied(d) => GatewayError::Forbidden(d),
            })?;
        // Its `Content-Type` is set with the upstream headers (`upstream::headers`).
        body::full(rewritten)
    } else {
        body
    };
    let claim = |n: &str| caller.principal.claims.string(n);
    if let Some(target) = rule.precheck_target(&matched.params, &claim) {
        let (path, query) = target.map_err(GatewayError::Forbidden)?;
        let read = precheck_request(&parts, &snapshot, &matched, &caller, path, query);
        let rsp = inner.clone().oneshot(read).await?;
        if !rsp.status().is_success() {
            // Outseta's own answer about the target (e.g. 404): nothing is written.
            return Ok(rsp);
        }
        let (_, _, json) = read_judged(rsp).await?;
        let judged = json
            .map_err(|error| Denial::PrecheckError {
                rule: rule.name.clone(),
                error,
            })
            .and_then(|json| rule.check_precheck(rules.root(), &input, &json));
        judged.map_err(GatewayError::Forbidden)?;
    }

    let cache_on = rule.cache_ttl(snapshot.config.cache.ttl).is_some();
    let plan = Plan {
        method: method.clone(),
        path: matched.path.as_str().to_string(),
        query: query.serialize(),
        credential: rule.credential,
        rule_name: rule.name.clone(),
        shape: Shape::new(cache_on, rule.response_when.is_some(), rewrites),
    };
    // `response_when` needs the request's values after the call; only then are they copied.
    let for_response = rule
        .response_when
        .is_some()
        .then(|| (matched.params.clone(), matched.query.clone()));
    let root = snapshot.clone();
    let principal = caller.principal.clone();
    let rsp = inner
        .call(Planned {
            req: Request::from_parts(parts, body),
            snapshot,
            matched,
            caller,
            plan,
        })
        .await?;

    let Some((params, query)) = for_response else {
        return Ok(rsp);
    };
    if !rsp.status().is_success() {
        return Ok(rsp);
    }
    let input = Input {
        claims: &principal.claims,
        params: &params,
        query: &query,
        method: method.as_str(),
    };
    let deny = |d: Denial| {
        metrics::counter!(m::RESPONSE_DENIED, "rule" => rule.name.to_string()).increment(1);
        GatewayError::Forbidden(d)
    };
    let (parts, bytes, json) = read_judged(rsp).await?;
    let json = json.map_err(|error| {
        deny(Denial::ResponseError {
            rule: rule.name.clone(),
            error,
        })
    })?;
    rule.check_response(root.config.rules.root(), &input, &json)
        .map_err(deny)?;
    Ok(Response::from_parts(parts, body::full(bytes)))
}

/// Reads an answer the gateway judges (at most [`MAX_INSPECTED_RESPONSE`]) and parses it:
/// its parts, its bytes, and its JSON or why it is not JSON (compressed or unparsable).
async fn read_judged(
    rsp: Response<Body>,
) -> Result<
    (
        http::response::Parts,
        bytes::Bytes,
        Result<serde_json::Value, String>,
    ),
    GatewayError,
> {
    let (parts, body) = rsp.into_parts();
    let bytes = body::collect_limited(body, MAX_INSPECTED_RESPONSE)
        .await
        .map_err(|e| match e {
            CollectError::TooLarge => {
                GatewayError::UpstreamUnavailable("the response is too large to check".into())
            }
            CollectError::Io(_) => {
                GatewayError::UpstreamUnavailable("the response could not be read".into())
            }
        })?;
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let json = match (encoded, serde_json::from_slice(&bytes)) {
        (false, Ok(v)) => Ok(v),
        _ => Err("the response is not JSON".to_string()),
    };
    Ok((parts, bytes, json))
}

/// The precheck's read: a GET of `path?query` with the rule's credential, through the layers
/// below (the cache passes it through: a write rule caches nothing), as the same caller and
/// with the write's context (deadline, request id), carrying only the client's trace headers.
fn precheck_request(
    write: &http::request::Parts,
    snapshot: &Arc<Snapshot>,
    matched: &Matched,
    caller: &Caller,
    path: String,
    query: Option<String>,
) -> Planned {
    let rule = &matched.rule;
    let mut req = Request::new(body::empty());
    for name in ["traceparent", "tracestate"] {
        if let Some(v) = write.headers.get(name) {
            req.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(ctx) = write.extensions.get::<RequestContext>() {
        req.extensions_mut().insert(ctx.clone());
    }
    Planned {
        req,
        snapshot: snapshot.clone(),
        matched: matched.clone(),
        caller: caller.clone(),
        plan: Plan {
            method: Method::GET,
            path,
            query,
            credential: rule.credential,
            rule_name: rule.name.clone(),
            shape: Shape::new(false, true, false),
        },
    }
}
