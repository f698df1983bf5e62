//! Routing: request limits, path safety, and the rule lookup.
//!
//! # Position in the stack
//! First layer below the rescue boundary; before the timeout, auth and policy.
//!
//! # Guarantees
//! - Headers larger than `max_header_bytes` → 431; a declared body larger than
//!   `max_request_body` → 413 before anything is read (a streamed one is cut at the limit).
//! - The client's body is marked ([`crate::body::from_client`]): when it breaks (bad chunk
//!   framing, cut short) anywhere below, even mid-way upstream, the answer is 400
//!   `bad_request`, never a 502 blamed on Outseta.
//! - The path is canonicalised ([`crate::rules::canon`]) or refused with 400 *before* any
//!   rule is tried; the canonical path is the one matched, judged and forwarded.
//! - No matching rule: 403 under `/api/v1/`, 404 elsewhere (default deny).
//! - Every response of a cacheable rule carries `Cache-Status`: the cache layer sets
//!   it on what it answers; here `outseta-gateway; fwd=bypass` is registered as the default
//!   for the rest (denials, limits and errors made before or below the cache).

use std::sync::Arc;

use futures_util::future::{self, Either, Ready};
use http::{Request, Response, header};
use tower::Service;

use super::context::{Failure, Loaded, Matched, Routed, trail_of};
use super::finish::{Finish, Finishing};
use super::step::{Around, AroundLayer};
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::rules::Denial;
use crate::rules::canon::{CanonPath, canonicalize};
use crate::rules::query::Query;

/// The routing step (through [`AroundLayer`]).
#[derive(Debug, Clone, Default)]
pub struct Route;

/// The layer of [`Route`].
pub type RouteLayer = AroundLayer<Route>;

fn header_bytes(req: &Request<Body>) -> usize {
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().len())
            .unwrap_or(0)
}

/// The refusal for a path no rule matches (default deny): 403 under `/api/v1`, 404 elsewhere.
pub fn no_rule(path: &CanonPath) -> GatewayError {
    let p = path.as_str().as_bytes();
    let under_api = p
        .get(..7)
        .is_some_and(|h| h.eq_ignore_ascii_case(b"/api/v1"))
        && matches!(p.get(7), None | Some(b'/'));
    if under_api {
        Denial::NoRule.into()
    } else {
        GatewayError::NotFound
    }
}

/// Matches the request; on success returns it [`Routed`], its body limited.
pub fn route(loaded: Loaded) -> Result<Routed, GatewayError> {
    let Loaded { mut req, snapshot } = loaded;
    let server = &snapshot.config.server;
    if header_bytes(&req) > server.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    let limit = server.max_request_body;
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) if n > limit => return Err(GatewayError::PayloadTooLarge),
            Some(_) => {}
            None => return Err(GatewayError::BadRequest("invalid Content-Length".into())),
        }
    }
    let path = canonicalize(req.uri().path())?;
    let query = Query::parse(req.uri().query());
    let rules = &snapshot.config.rules;
    let Some((rule, params)) = rules.find_shared(req.method(), &path) else {
        return Err(no_rule(&path));
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    req = req.map(|b| body::from_client(http_body_util::Limited::new(b, limit)));
    Ok(Routed {
        req,
        snapshot,
        matched: Matched {
            rule,
            params,
            path,
            query,
        },
    })
}

impl<S> Around<S, Loaded> for Route
where
    S: Service<Routed, Response = Response<Body>, Error = Failure>,
{
    type Next = Routed;
    type Future = Either<Finishing<S::Future, Ruled>, Ready<Result<Response<Body>, Failure>>>;

    fn around(&self, inner: &mut S, req: Loaded) -> Self::Future {
        match route(req) {
            Ok(req) => {
                let ruled = Ruled {
                    rule: req.matched.rule.name.clone(),
                    cacheable: req
                        .matched
                        .rule
                        .cache_ttl(req.snapshot.config.cache.ttl)
                        .is_some(),
                };
                Either::Left(Finishing::new(inner.call(req), ruled))
            }
            Err(e) => Either::Right(future::ready(Err(e.into()))),
        }
    }
}

/// The matched rule on the way back: its name on the trail, and on a cacheable rule's answer
/// a `Cache-Status` (`fwd=bypass`) when the cache did not give it one (an error from below).
pub struct Ruled {
    rule: Arc<str>,
    cacheable: bool,
}

impl Finish<Failure> for Ruled {
    fn finish(self, rsp: &mut Response<Body>) {
        if self.cacheable && !rsp.headers().contains_key(crate::cache::CACHE_STATUS) {
            rsp.headers_mut().insert(
                crate::cache::CACHE_STATUS,
                crate::cache::status::bypass_value(),
            );
        }
        trail_of(rsp).rule = Some(self.rule);
    }

    fn fail(self, failure: &mut Failure) {
        if self.cacheable {
            failure.header(
                crate::cache::CACHE_STATUS,
                crate::cache::status::bypass_value(),
            );
        }
        failure.trail_mut().rule = Some(self.rule);
    }
}
