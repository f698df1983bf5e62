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
//!   `RateLimit`, on the answer or, for an error, on the [`Failure`] (set by the rescue boundary).
//! - Anonymous callers are limited by IP and get no `RateLimit` fields (a shared address
//!   would make them meaningless).

use std::sync::Arc;

use futures_util::future::{self, Either, Ready};
use http::{HeaderValue, Response};
use tower::Service;

use super::context::{Authed, Failure, context, user_key};
use super::finish::{Finish, Finishing};
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
    S: Service<Authed, Response = Response<Body>, Error = Failure>,
{
    type Next = Authed;
    type Future = Either<Finishing<S::Future, Headers>, Ready<Result<Response<Body>, Failure>>>;

    fn around(&self, inner: &mut S, req: Authed) -> Self::Future {
        let ctx = context(&req.req);
        let key = user_key(Some(&req.caller), ctx.and_then(|c| c.client.as_ref()));
        let outcome = self.limiter.check(&key);
        let headers = key.is_authenticated().then(|| Headers {
            policy: self.limiter.policy_header(),
            state: self.limiter.state_header(&outcome),
        });
        match (outcome, headers) {
            (Ok(_), Some(h)) => Either::Left(Finishing::new(inner.call(req), h)),
            (Ok(_), None) => Either::Left(Finishing::plain(inner.call(req))),
            (Err(limited), headers) => {
                let mut failure = Failure::from(GatewayError::RateLimited {
                    retry_after: limited.retry_after,
                });
                if let Some(h) = headers {
                    h.fail(&mut failure);
                }
                Either::Right(future::ready(Err(failure)))
            }
        }
    }
}

/// The `RateLimit-Policy` and `RateLimit` fields of an authenticated caller, set on whatever
/// answer comes back (errors included).
pub struct Headers {
    policy: HeaderValue,
    state: HeaderValue,
}

impl Finish<Failure> for Headers {
    fn finish(self, rsp: &mut Response<Body>) {
        let h = rsp.headers_mut();
        h.insert(RATELIMIT_POLICY.clone(), self.policy);
        h.insert(RATELIMIT.clone(), self.state);
    }

    fn fail(self, failure: &mut Failure) {
        failure.header(RATELIMIT_POLICY.clone(), self.policy);
        failure.header(RATELIMIT.clone(), self.state);
    }
}
