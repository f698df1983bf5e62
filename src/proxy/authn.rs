//! Authentication per the matched rule's `auth` mode.
//!
//! # Position in the stack
//! After routing (needs [`Matched`](super::context::Matched)) and the timeout; before policy.
//!
//! - `required`: a valid bearer token or 401 (`missing_token` / `invalid_token`).
//! - `optional`: verified if sent (a bad one is still 401); absent → anonymous (`claims = {}`).
//! - `none`: any token is ignored; the forwarder strips it.
//!
//! Inserts [`Caller`]. The caller's `Authorization` value is kept only when the rule forwards
//! it (`credential = "user"`).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use super::context::{Caller, context, context_mut, trail};
use crate::auth::verify::Verifier;
use crate::auth::{AuthError, Principal, bearer};
use crate::body::Body;
use crate::error::GatewayError;
use crate::rules::{AuthMode, Credential};
use crate::telemetry::handles as h;

#[derive(Debug, Clone)]
pub struct AuthnLayer {
    verifier: Arc<Verifier>,
}

impl AuthnLayer {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for AuthnLayer {
    type Service = Authn<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authn {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Authn<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S> Service<Request<Body>> for Authn<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = BoxFuture<'static, Result<Response<Body>, GatewayError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let (mode, credential) = {
                let ctx = context(&req);
                let snapshot = ctx.and_then(|c| c.snapshot.as_ref());
                let matched = ctx.and_then(|c| c.matched.as_ref());
                match (snapshot, matched) {
                    (Some(s), Some(mt)) => match s.config.rules.rule(mt.rule) {
                        Some(r) => (r.auth, r.credential),
                        None => return Err(GatewayError::Internal("rule missing".into())),
                    },
                    _ => return Err(GatewayError::Internal("request not routed".into())),
                }
            };
            let presented = presented(req.headers(), mode, credential);
            let caller = match authenticate(&verifier, presented, mode).await {
                Ok(c) => c,
                Err(e) => {
                    h::AUTH_FAILURES.get(e.reason()).increment(1);
                    return Err(e.into());
                }
            };
            if let Some(sub) = caller.principal.sub() {
                trail(&req, |t| t.sub = Some(sub.clone()));
            }
            context_mut(&mut req).caller = Some(caller);
            inner.call(req).await
        })
    }
}

/// What the client presented. The token is borrowed from the request's headers for the
/// verification (the request is not changed until it is done), not copied.
struct Presented<'a> {
    token: Result<Option<&'a str>, AuthError>,
    /// The `Authorization` value to forward (only for `credential = "user"`).
    forward: Option<HeaderValue>,
}

fn presented(headers: &http::HeaderMap, mode: AuthMode, credential: Credential) -> Presented<'_> {
    if mode == AuthMode::None {
        return Presented {
            token: Ok(None),
            forward: None,
        };
    }
    let token = bearer(headers);
    let forward = (credential == Credential::User)
        .then(|| headers.get(header::AUTHORIZATION).cloned())
        .flatten()
        .map(|mut v| {
            v.set_sensitive(true);
            v
        });
    Presented { token, forward }
}

async fn authenticate(
    verifier: &Verifier,
    presented: Presented<'_>,
    mode: AuthMode,
) -> Result<Caller, AuthError> {
    let anonymous = || Caller {
        principal: Arc::new(Principal::anonymous()),
        bearer: None,
    };
    if mode == AuthMode::None {
        return Ok(anonymous());
    }
    match (presented.token?, mode) {
        (None, AuthMode::Required) => Err(AuthError::Missing),
        (None, _) => Ok(anonymous()),
        (Some(token), _) => {
            let principal = verifier.verify(token).await?;
            Ok(Caller {
                principal,
                bearer: presented.forward,
            })
        }
    }
}
