//! The terminal service: swaps the credential and calls Outseta.
//!
//! # Position in the stack
//! Innermost. Reads the [`Plan`] written by policy and nothing from the client but its
//! headers (cleaned by [`crate::upstream::headers`]) and body.
//!
//! # Guarantees
//! - Upstream sees exactly the rule's credential: `Outseta <key>:<secret>`, the caller's own
//!   bearer, or no `Authorization` — never the client's header otherwise, nor cookies.
//! - The path and query sent are the plan's, i.e. exactly what the rule judged.
//! - One attempt, bounded by `upstream_timeout` (to the response head); the body streams.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, Uri, header};
use tower::Service;

use super::context::{Caller, Plan, Trail};
use super::snapshot::Snapshot;
use crate::body::{self, Body};
use crate::config::secrets::ApiCredential;
use crate::error::GatewayError;
use crate::rules::Credential;
use crate::telemetry::metrics as m;
use crate::upstream::{self, HttpClient, headers};

#[derive(Clone)]
pub struct Forward {
    client: HttpClient,
    api: Option<ApiCredential>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl Forward {
    pub fn new(client: HttpClient, api: Option<ApiCredential>) -> Self {
        Self { client, api }
    }
}

/// `upstream` base + the plan's path and query.
pub fn upstream_uri(base: &Uri, plan: &Plan) -> Result<Uri, GatewayError> {
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    let prefix = base.path().trim_end_matches('/');
    let s = match &plan.query {
        Some(q) => format!("{scheme}://{authority}{prefix}{}?{q}", plan.path),
        None => format!("{scheme}://{authority}{prefix}{}", plan.path),
    };
    s.parse()
        .map_err(|_| GatewayError::Internal("could not build the upstream URI".into()))
}

impl Forward {
    /// Builds the upstream request for `plan` from the client's request parts.
    pub fn build(
        &self,
        base: &Uri,
        plan: &Plan,
        client_headers: &http::HeaderMap,
        caller: Option<&Caller>,
        body: Body,
    ) -> Result<Request<Body>, GatewayError> {
        let mut out = Request::new(body);
        *out.method_mut() = plan.method.clone();
        *out.uri_mut() = upstream_uri(base, plan)?;
        let mut h = headers::upstream_request(client_headers, !plan.body_rewritten);
        if plan.identity_encoding {
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        match plan.credential {
            Credential::ApiKey => match &self.api {
                Some(c) => {
                    h.insert(header::AUTHORIZATION, c.header().clone());
                }
                None => return Err(GatewayError::Internal("no API key configured".into())),
            },
            Credential::User => {
                if let Some(b) = caller.and_then(|c| c.bearer.clone()) {
                    h.insert(header::AUTHORIZATION, b);
                }
            }
            Credential::None => {}
        }
        *out.headers_mut() = h;
        Ok(out)
    }
}

impl Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = BoxFuture<'static, Result<Response<Body>, GatewayError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let ext = req.extensions();
            let (Some(snapshot), Some(plan)) = (
                ext.get::<Arc<Snapshot>>().cloned(),
                ext.get::<Plan>().cloned(),
            ) else {
                return Err(GatewayError::Internal(
                    "forward reached without a plan".into(),
                ));
            };
            let caller = ext.get::<Caller>().cloned();
            let trail = ext.get::<Trail>().cloned();
            let (parts, body) = req.into_parts();
            let upstream_req = this.build(
                &snapshot.config.outseta.upstream,
                &plan,
                &parts.headers,
                caller.as_ref(),
                body,
            )?;
            let timeout = snapshot.config.server.upstream_timeout;
            let start = Instant::now();
            let result = upstream::send(&this.client, upstream_req, timeout).await;
            let elapsed = start.elapsed();
            let status_label = match &result {
                Ok(r) => r.status().as_str().to_string(),
                Err(upstream::UpstreamError::Timeout) => "timeout".into(),
                Err(_) => "error".into(),
            };
            metrics::histogram!(m::UPSTREAM_DURATION, "rule" => plan.rule_name.to_string())
                .record(elapsed.as_secs_f64());
            metrics::counter!(m::UPSTREAM_REQUESTS,
                "rule" => plan.rule_name.to_string(),
                "credential" => plan.credential.as_str(),
                "status" => status_label
            )
            .increment(1);
            let rsp = result?;
            let status = rsp.status().as_u16();
            if let Some(t) = trail {
                t.update(|t| {
                    t.upstream_status = Some(status);
                    t.upstream_latency = Some(elapsed);
                });
            }
            let (mut rparts, rbody) = rsp.into_parts();
            headers::downstream_response(&mut rparts.headers);
            Ok(Response::from_parts(rparts, body::boxed(rbody)))
        })
    }
}
