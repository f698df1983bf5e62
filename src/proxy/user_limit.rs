//! The per-user limit (`[user_limit]`): every request counts against its caller —
//! the token's `sub`, else the client IP — cache hits included; over the limit is 429
//! `rate_limited` with `Retry-After`.
//!
//! # Position in the stack
//! Right after `authn` (it needs the [`Caller`](super::context::Caller)) and before `policy`
//! and the cache, so a cache hit costs the caller as much as a miss and a limited request
//! does no policy work.
//!
//! # Guarantees
//! - Responses to authenticated requests, errors included, carry `RateLimit-Policy` and
//!   `RateLimit` (set through [`ResponseHeaders`](super::context::ResponseHeaders), applied by the rescue boundary).
//! - Anonymous callers are limited by IP and get no `RateLimit` fields (a shared address
//!   would make them meaningless).

use std::sync::Arc;

use futures_util::future::{self, Either, Ready};
use http::Response;
use tower::Service;

use super::context::{Authed, context, user_key};
use super::step::{Around, AroundLayer};
use crate::body::Body;
use crate::error::GatewayError;
use crate::limits::headers::{RATELIMIT, RATELIMIT_POLICY};
use crate::limits::user::UserLimiter;

/// The per-user limit step (through [`AroundLayer`]).
#[derive(Debug, Clone)]
pub struct UserLimit {
    limiter: Arc<UserLimiter>,
}

/// The layer of [`UserLimit`].
pub type UserLimitLayer = AroundLayer<UserLimit>;

impl UserLimitLayer {
    pub fn new(limiter: Arc<UserLimiter>) -> Self {
        AroundLayer(UserLimit { limiter })
    }
}

impl<S> Around<S, Authed> for UserLimit
where
    S: Service<Authed, Response = Response<Body>, Error = GatewayError>,
{
    type Next = Authed;
    type Future = Either<S::Future, Ready<Result<Response<Body>, GatewayError>>>;

    fn around(&self, inner: &mut S, req: Authed) -> Self::Future {
        let ctx = context(&req.req);
        let key = user_key(Some(&req.caller), ctx.and_then(|c| c.client.as_ref()));
        let outcome = self.limiter.check(&key);
        if key.is_authenticated()
            && let Some(extra) = ctx.and_then(|c| c.response_headers.as_ref())
        {
            extra.insert(RATELIMIT_POLICY.clone(), self.limiter.policy_header());
            extra.insert(RATELIMIT.clone(), self.limiter.state_header(&outcome));
        }
        match outcome {
            Ok(_) => Either::Left(inner.call(req)),
            Err(limited) => Either::Right(future::ready(Err(GatewayError::RateLimited {
                retry_after: limited.retry_after,
            }))),
        }
    }
}
