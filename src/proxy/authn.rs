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

use http::{HeaderValue, Response, header};
use tower::Service;

use super::context::{Authed, Caller, Failure, Routed, trail_of};
use super::step::{Step, StepLayer};
use crate::auth::verify::Verifier;
use crate::auth::{AuthError, Principal, bearer};
use crate::body::Body;
use crate::rules::{AuthMode, Credential};
use crate::telemetry::handles as h;

/// The authentication step (through [`StepLayer`]).
#[derive(Debug, Clone)]
pub struct Authn {
    verifier: Arc<Verifier>,
}

/// The layer of [`Authn`].
pub type AuthnLayer = StepLayer<Authn>;

impl AuthnLayer {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        StepLayer(Authn { verifier })
    }
}

impl<S> Step<S, Routed> for Authn
where
    S: Service<Authed, Response = Response<Body>, Error = Failure> + Send + 'static,
    S::Future: Send + 'static,
{
    type Next = Authed;

    async fn run(self, mut inner: S, req: Routed) -> Result<Response<Body>, Failure> {
        let rule = &req.matched.rule;
        let (mode, credential) = (rule.auth, rule.credential);
        let presented = presented(req.req.headers(), mode, credential);
        let caller = match authenticate(&self.verifier, presented, mode).await {
            Ok(c) => c,
            Err(e) => {
                h::AUTH_FAILURES.get(e.reason()).increment(1);
                return Err(e.into());
            }
        };
        let sub = caller.principal.sub().cloned();
        let mut out = inner.call(req.authed(caller)).await;
        if let Some(sub) = sub {
            match &mut out {
                Ok(rsp) => trail_of(rsp).sub = Some(sub),
                Err(f) => f.trail_mut().sub = Some(sub),
            }
        }
        out
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
