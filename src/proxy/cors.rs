//! CORS for browser apps (`[cors] allowed_origins`): exact origins only.
//!
//! # Position in the stack
//! Outside the rescue boundary, so the gateway's own errors (401, 403, 429…) carry CORS
//! headers and an SPA can read them; inside the access log.
//!
//! # Behaviour
//! - Preflight (`OPTIONS` + `Origin` + `Access-Control-Request-Method`) from a listed origin:
//!   answered here with 204 — no token needed, nothing reaches Outseta. Rules are enforced
//!   on the actual request, whose refusal the SPA can then read.
//! - A request (preflight or not) whose `Origin` is not listed: 403 `forbidden`, without
//!   CORS headers, and nothing reaches Outseta. Requests without `Origin` (servers, curl) pass.
//! - `*` is never used; no credentials mode (bearer tokens need no cookies).

use std::convert::Infallible;

use futures_util::future::{self, Either, Ready};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tower::Service;

use super::context::{Decision, Loaded, context, trail_of};
use super::finish::{Finish, Finishing};
use super::step::{Around, AroundLayer};
use crate::body::{self, Body};
use crate::error::GatewayError;

const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
const EXPOSE_HEADERS: &str =
    "x-request-id, cache-status, ratelimit, ratelimit-policy, retry-after, www-authenticate";

/// The CORS step (through [`AroundLayer`]).
#[derive(Debug, Clone, Default)]
pub struct Cors;

/// The layer of [`Cors`].
pub type CorsLayer = AroundLayer<Cors>;

fn request_id(req: &Request<Body>) -> String {
    context(req)
        .and_then(|c| c.request_id.as_ref())
        .map(|r| r.as_str().to_string())
        .unwrap_or_default()
}

impl<S> Around<S, Loaded> for Cors
where
    S: Service<Loaded, Response = Response<Body>, Error = Infallible>,
{
    type Next = Loaded;
    type Future =
        Either<Finishing<S::Future, AllowOrigin>, Ready<Result<Response<Body>, Infallible>>>;

    fn around(&self, inner: &mut S, loaded: Loaded) -> Self::Future {
        let Some(origin) = loaded.req.headers().get(header::ORIGIN).cloned() else {
            return Either::Left(Finishing::plain(inner.call(loaded)));
        };
        let allowed = {
            let cors = &loaded.snapshot.cors;
            let o = origin.to_str().unwrap_or("").to_ascii_lowercase();
            cors.origins
                .contains(&o)
                .then(|| (cors.allow_headers.clone(), cors.max_age.clone()))
        };
        let req = &loaded.req;
        let Some((allow_headers, max_age)) = allowed else {
            let rid = request_id(req);
            return Either::Right(future::ok(
                GatewayError::ForbiddenOrigin.into_response(&rid),
            ));
        };
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            let mut rsp = Response::new(body::empty());
            trail_of(&mut rsp).decision = Decision::Preflight;
            *rsp.status_mut() = StatusCode::NO_CONTENT;
            let h = rsp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
            h.insert(header::ACCESS_CONTROL_MAX_AGE, max_age);
            h.insert(
                header::VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            );
            return Either::Right(future::ok(rsp));
        }
        Either::Left(Finishing::new(inner.call(loaded), AllowOrigin(origin)))
    }
}

/// The CORS headers of an answer to an allowed origin.
pub struct AllowOrigin(HeaderValue);

impl Finish for AllowOrigin {
    fn finish(self, rsp: &mut Response<Body>) {
        let h = rsp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.0);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}
