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

use http::{HeaderValue, Request, Response, header};

use super::context::{Caller, context, context_mut, trail};
use super::step::{Inner, Step, StepLayer};
use crate::auth::verify::Verifier;
use crate::auth::{AuthError, Principal, bearer};
use crate::body::Body;
use crate::error::GatewayError;
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

impl Step for Authn {
    async fn run<S: Inner>(
        self,
        mut inner: S,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, GatewayError> {
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
        let caller = match authenticate(&self.verifier, presented, mode).await {
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
