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
use std::task::{Context, Poll};

use futures_util::future::{self, Either, Ready};
use http::{Request, Response};
use tower::{Layer, Service};

use super::context::{context, user_key};
use crate::body::Body;
use crate::error::GatewayError;
use crate::limits::headers::{RATELIMIT, RATELIMIT_POLICY};
use crate::limits::user::UserLimiter;

#[derive(Debug, Clone)]
pub struct UserLimitLayer {
    limiter: Arc<UserLimiter>,
}

impl UserLimitLayer {
    pub fn new(limiter: Arc<UserLimiter>) -> Self {
        Self { limiter }
    }
}

impl<S> Layer<S> for UserLimitLayer {
    type Service = UserLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        UserLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserLimit<S> {
    inner: S,
    limiter: Arc<UserLimiter>,
}

impl<S> Service<Request<Body>> for UserLimit<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = Either<S::Future, Ready<Result<Response<Body>, GatewayError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let ctx = context(&req);
        let key = user_key(
            ctx.and_then(|c| c.caller.as_ref()),
            ctx.and_then(|c| c.client.as_ref()),
        );
        let outcome = self.limiter.check(&key);
        if key.is_authenticated()
            && let Some(extra) = ctx.and_then(|c| c.response_headers.as_ref())
        {
            extra.insert(RATELIMIT_POLICY.clone(), self.limiter.policy_header());
            extra.insert(RATELIMIT.clone(), self.limiter.state_header(&outcome));
        }
        match outcome {
            Ok(_) => Either::Left(self.inner.call(req)),
            Err(limited) => Either::Right(future::ready(Err(GatewayError::RateLimited {
                retry_after: limited.retry_after,
            }))),
        }
    }
}
