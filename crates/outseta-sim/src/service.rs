//! The request pipeline: route, authenticate, rate-limit, read the body, dispatch, count,
//! delay.
//!
//! # Guarantees
//! - Every response (errors and 429s included) is counted under `METHOD template` and
//!   delayed by the configured latency; the `/__sim/*` control endpoints are neither.
//! - Any request carrying the valid API key takes a permit from the per-key limiter,
//!   whatever the route; an exhausted limiter answers 429 before the handler runs.
//! - Bearer tokens are verified against the simulator's own key, `iss` and `aud`.
//! - Request bodies are read up to [`MAX_BODY`]; no lock is held across an `.await`.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};

use super::State;
use super::auth::{self, Credential};
use super::handlers::{self, Call, Caller};
use super::query::Params;
use super::respond;
use super::routes::{self, Access, Resolved};
use super::stats::method_label;
use crate::body::{self, Body, CollectError};
use hyper::body::Incoming;

/// Largest request body read.
pub const MAX_BODY: usize = 1 << 20;

pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path().starts_with("/__sim/") {
        return control(&state, req.method(), req.uri().path());
    }
    let (rsp, key) = process(&state, req).await;
    state.stats.record(key, rsp.status().as_u16());
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    rsp
}

fn control(state: &State, method: &Method, path: &str) -> Response<Body> {
    match (method.as_str(), path) {
        ("GET", "/__sim/stats") => respond::ok(&state.stats.snapshot()),
        ("POST", "/__sim/reset-stats") => {
            state.stats.reset();
            respond::ok(&state.stats.snapshot())
        }
        _ => respond::not_found(path),
    }
}

async fn process(state: &State, req: Request<Incoming>) -> (Response<Body>, String) {
    let m = method_label(req.method().as_str());
    let path = req.uri().path().to_owned();
    match routes::resolve(req.method().as_str(), &path) {
        Resolved::NotFound => (respond::not_found(&path), format!("{m} (unmatched)")),
        Resolved::MethodNotAllowed(route) => (
            respond::method_not_allowed(req.method().as_str()),
            format!("{m} {}", route.template),
        ),
        Resolved::Found { route, params } => {
            let key = format!("{m} {}", route.template);
            (endpoint(state, route, &params, req).await, key)
        }
    }
}

fn authenticate(state: &State, access: Access, cred: &Credential) -> Result<Caller, ()> {
    let user = |token: &str| {
        state
            .signer
            .verify(token, &state.issuer, &state.audience)
            .map(Caller::User)
            .map_err(|error| tracing::debug!(%error, "bearer token refused"))
    };
    match (access, cred) {
        (Access::Public, Credential::ApiKey { valid: true, .. }) => Ok(Caller::ApiKey),
        (Access::Public, _) => Ok(Caller::Anonymous),
        (Access::Token, Credential::ApiKey { valid: true, .. }) => Ok(Caller::ApiKey),
        (Access::Token, Credential::ApiKey { valid: false, .. }) => Err(()),
        (Access::Token, _) => Ok(Caller::Anonymous),
        (Access::Bearer | Access::ApiKeyOrScopedBearer, Credential::Bearer(t)) => user(t),
        (Access::ApiKey | Access::ApiKeyOrScopedBearer, Credential::ApiKey { valid: true, .. }) => {
            Ok(Caller::ApiKey)
        }
        _ => Err(()),
    }
}

async fn endpoint(
    state: &State,
    route: &'static routes::Route,
    captures: &[String],
    req: Request<Incoming>,
) -> Response<Body> {
    let cred = auth::parse(req.headers(), &state.api);
    if let Credential::ApiKey { key, valid: true } = &cred {
        state.stats.arrived_with_api_key();
        if !state.limiter.check(key) {
            return respond::too_many_requests();
        }
    }
    let Ok(caller) = authenticate(state, route.access, &cred) else {
        return respond::unauthorized();
    };
    let (parts, body) = req.into_parts();
    let bytes = if parts.method == Method::PUT || parts.method == Method::POST {
        match body::collect_limited(body, MAX_BODY).await {
            Ok(b) => b,
            Err(CollectError::TooLarge) => {
                return respond::message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is too large.",
                );
            }
            Err(CollectError::Io(_)) => return respond::bad_request("The request is invalid."),
        }
    } else {
        bytes::Bytes::new()
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let call = Call {
        route: route.id,
        method: parts.method.as_str(),
        captures,
        params: Params::parse(parts.uri.query()),
        caller,
        content_type,
        body: bytes,
    };
    handlers::dispatch(state, &call)
}
