//! The terminal service: swaps the credential and calls Outseta.
//!
//! # Position in the stack
//! Innermost. Reads the [`Plan`] written by policy and nothing from the client but the
//! headers of `[outseta] forward_headers` (see [`crate::upstream::headers`]) and the body.
//!
//! # Guarantees
//! - Upstream sees exactly the rule's credential: `Outseta <key>:<secret>`, the caller's own
//!   bearer, or no `Authorization` — never the client's header otherwise, nor cookies.
//! - The path and query sent are the plan's, i.e. exactly what the rule judged.
//! - Each attempt is bounded by `upstream_timeout` (to the response head); the body streams.
//!
//! # The budget
//! - A call made with the API key takes one permit from the [`Budget`] right before it goes
//!   upstream, and only then: `user`/`none` credentials never pay, and nothing above the
//!   forwarder (cache hits, collapsed followers) reaches it. The wait goes on the answer's
//!   trail, or the failure's (`budget_wait`), with Outseta's status and time.
//! - No permit within `max_wait` (or what is left of the request's deadline):
//!   [`GatewayError::UpstreamBusy`] with `Retry-After` — the cache's cue to serve stale.
//! - Outseta answers 429 to an API-key call: the whole budget pauses for its `Retry-After`
//!   (1 s when absent). A GET without a body is retried (up to [`MAX_ATTEMPTS`] calls, each
//!   paying a permit) within `max_wait` of its first wait, else it gets `UpstreamBusy`;
//!   other methods get Outseta's 429 as is.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body::Body as _;
use tower::Service;

use super::context::{Caller, Failure, Plan, Planned, Trail, context, trail_of, user_key};
use super::request_id::X_REQUEST_ID;
use super::snapshot::Snapshot;
use crate::body::{self, Body};
use crate::budget::{self, Budget};
use crate::config::Outseta;
use crate::config::secrets::ApiCredential;
use crate::error::GatewayError;
use crate::rules::Credential;
use crate::telemetry::handles as h;
use crate::upstream::{self, HttpClient, headers};

/// Upstream calls made for one request at most (the first and the retries after a 429).
pub const MAX_ATTEMPTS: u32 = 3;

/// The terminal service. Cloned by every layer above that hands its inner service to a
/// future, so its state sits behind one `Arc` (one reference count per clone, not the
/// connection pool's several).
#[derive(Clone)]
pub struct Forward(Arc<Shared>);

#[derive(Clone)]
struct Shared {
    client: HttpClient,
    api: Option<ApiCredential>,
    budget: Option<Budget>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("api", &self.0.api)
            .finish_non_exhaustive()
    }
}

impl Forward {
    /// A forwarder without a budget (API-key calls unshaped): see [`with_budget`](Self::with_budget).
    pub fn new(client: HttpClient, api: Option<ApiCredential>) -> Self {
        Self(Arc::new(Shared {
            client,
            api,
            budget: None,
        }))
    }

    /// Shapes API-key calls through `budget` (the gateway always sets one).
    pub fn with_budget(mut self, budget: Budget) -> Self {
        Arc::make_mut(&mut self.0).budget = Some(budget);
        self
    }
}

/// `upstream` base + the plan's path and query. Only the path and query are parsed; the
/// scheme and authority are the base's own (already validated at load).
pub fn upstream_uri(base: &Uri, plan: &Plan) -> Result<Uri, GatewayError> {
    let invalid = || GatewayError::Internal("could not build the upstream URI".into());
    let prefix = base.path().trim_end_matches('/');
    let query_len = plan.query.as_ref().map_or(0, |q| q.len() + 1);
    let mut pq = String::with_capacity(prefix.len() + plan.path.len() + query_len);
    pq.push_str(prefix);
    pq.push_str(&plan.path);
    if let Some(q) = &plan.query {
        pq.push('?');
        pq.push_str(q);
    }
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(base.scheme().cloned().unwrap_or(http::uri::Scheme::HTTPS));
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(pq).map_err(|_| invalid())?);
    Uri::from_parts(parts).map_err(|_| invalid())
}

impl Forward {
    /// Builds the upstream request for `plan` from the client's request parts.
    pub fn build(
        &self,
        outseta: &Outseta,
        plan: &Plan,
        client_headers: &http::HeaderMap,
        caller: Option<&Caller>,
        request_id: Option<&HeaderValue>,
        body: Body,
    ) -> Result<Request<Body>, GatewayError> {
        let mut out = Request::new(body);
        *out.method_mut() = plan.method.clone();
        *out.uri_mut() = upstream_uri(&outseta.upstream, plan)?;
        let mut h = headers::upstream_request(client_headers, &outseta.forward_headers, plan.shape);
        // The vetted id replaces the client's, which `request_id` may have refused; without
        // one (never in the stack), the client's value is not passed on unchecked.
        match request_id {
            Some(id) => {
                h.insert(X_REQUEST_ID.clone(), id.clone());
            }
            None => {
                h.remove(&X_REQUEST_ID);
            }
        }
        match plan.credential {
            Credential::ApiKey => match &self.0.api {
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

impl Service<Planned> for Forward {
    type Response = Response<Body>;
    type Error = Failure;
    type Future = BoxFuture<'static, Result<Response<Body>, Failure>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Planned) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            // What this call learns, for the access line: on the answer, or on the failure.
            let mut trail = Trail::default();
            let out = this.forward(req, &mut trail).await;
            match out {
                Ok(mut rsp) => {
                    trail_of(&mut rsp).merge(trail);
                    Ok(rsp)
                }
                Err(error) => Err(Failure::with_trail(error, trail)),
            }
        })
    }
}

impl Forward {
    /// The budget permit, the credential swap and the upstream call, with retries after a 429.
    async fn forward(
        &self,
        req: Planned,
        trail: &mut Trail,
    ) -> Result<Response<Body>, GatewayError> {
        let this = self;
        {
            let Planned {
                req,
                snapshot,
                caller,
                plan,
                ..
            } = req;
            let ext = context(&req);
            let request_id = ext.and_then(|c| c.request_id.clone());
            let user = user_key(Some(&caller), ext.and_then(|c| c.client.as_ref()));
            let deadline = ext.and_then(|c| c.deadline).map_or_else(
                || {
                    budget::later(
                        tokio::time::Instant::now(),
                        snapshot.config.server.request_timeout,
                    )
                },
                |d| d.0,
            );
            let (parts, body) = req.into_parts();
            let budget = match plan.credential {
                Credential::ApiKey => this.0.budget.as_ref(),
                Credential::User | Credential::None => None,
            };
            let retryable = plan.method == Method::GET && body.is_end_stream();
            // Retries after a 429 stay within max_wait of the first wait.
            let window = budget
                .map(|b| deadline.min(budget::later(tokio::time::Instant::now(), b.max_wait())));
            let mut body = Some(body);
            let mut waited = Duration::ZERO;
            let mut attempt = 0;
            loop {
                attempt += 1;
                if let (Some(budget), Some(window)) = (budget, window) {
                    let granted = budget.acquire(&user, window).await;
                    if let Ok(g) = &granted {
                        waited += g.waited;
                    }
                    trail.budget_wait = Some(waited);
                    if let Err(busy) = granted {
                        return Err(GatewayError::UpstreamBusy {
                            retry_after: busy.retry_after,
                        });
                    }
                }
                let upstream_req = this.build(
                    &snapshot.config.outseta,
                    &plan,
                    &parts.headers,
                    Some(&caller),
                    request_id.as_ref().map(|id| &id.0),
                    body.take().unwrap_or_else(body::empty),
                )?;
                let rsp = this.send(&snapshot, &plan, upstream_req, trail).await?;
                if let Some(budget) = budget
                    && rsp.status() == StatusCode::TOO_MANY_REQUESTS
                {
                    let pause = budget::pause::retry_after(rsp.headers(), SystemTime::now());
                    budget.pause(pause).await;
                    if retryable && attempt < MAX_ATTEMPTS {
                        continue;
                    }
                }
                let (mut rparts, rbody) = rsp.into_parts();
                headers::downstream_response(&mut rparts.headers);
                return Ok(Response::from_parts(rparts, body::boxed(rbody)));
            }
        }
    }
}

impl Forward {
    /// One upstream attempt, with its metrics and trail entries.
    async fn send(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
        upstream_req: Request<Body>,
        trail: &mut Trail,
    ) -> Result<Response<hyper::body::Incoming>, GatewayError> {
        let timeout = snapshot.config.server.upstream_timeout;
        let start = Instant::now();
        let result = upstream::send(&self.0.client, upstream_req, timeout).await;
        let elapsed = start.elapsed();
        let status_key = match &result {
            Ok(r) => r.status().as_u16(),
            Err(upstream::UpstreamError::Timeout) => 0,
            Err(_) => 1,
        };
        h::UPSTREAM_DURATION
            .get(h::RuleKey(plan.rule_name.clone()))
            .record(elapsed.as_secs_f64());
        h::UPSTREAM_REQUESTS
            .get((
                h::RuleKey(plan.rule_name.clone()),
                h::Label(plan.credential.as_str()),
                status_key,
            ))
            .increment(1);
        let rsp = result?;
        trail.upstream_status = Some(rsp.status().as_u16());
        trail.upstream_latency = Some(elapsed);
        Ok(rsp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(path: &str, query: Option<&str>) -> Plan {
        Plan {
            method: Method::GET,
            path: path.into(),
            query: query.map(str::to_string),
            credential: Credential::ApiKey,
            rule_name: Arc::from("r"),
            shape: crate::upstream::headers::Shape::default(),
        }
    }

    #[test]
    fn upstream_uri_joins_base_path_and_query() {
        let base: Uri = "https://demo.outseta.com".parse().unwrap();
        let uri = upstream_uri(&base, &plan("/api/v1/crm/people/DQ2DyknW", None)).unwrap();
        assert_eq!(uri, "https://demo.outseta.com/api/v1/crm/people/DQ2DyknW");
        let base: Uri = "http://127.0.0.1:9000/prefix/".parse().unwrap();
        let uri = upstream_uri(&base, &plan("/api/v1/x", Some("a=b&c=%20"))).unwrap();
        assert_eq!(uri, "http://127.0.0.1:9000/prefix/api/v1/x?a=b&c=%20");
        assert_eq!(uri.query(), Some("a=b&c=%20"));
        assert!(upstream_uri(&base, &plan("/a b", None)).is_err());
    }

    #[test]
    fn the_vetted_request_id_replaces_the_clients_and_without_one_none_goes_upstream() {
        let client = upstream::client(&[], Duration::from_secs(1)).unwrap();
        let fwd = Forward::new(client, Some(ApiCredential::new("key", "secret").unwrap()));
        let outseta = Outseta {
            domain: None,
            upstream: "https://demo.outseta.com".parse().unwrap(),
            jwks_url: "https://demo.outseta.com/.well-known/jwks".parse().unwrap(),
            issuer: "http://demo.outseta.com".into(),
            audience: "demo.outseta.com".into(),
            forward_headers: Arc::from([header::ACCEPT]),
        };
        let mut sent = http::HeaderMap::new();
        sent.insert(&X_REQUEST_ID, HeaderValue::from_static("a b<script>"));
        let vetted = HeaderValue::from_static("0b0c6a9e-5a49-4a0d-9d3b-6a4f3e0e8c11");
        let ids = |id: Option<&HeaderValue>| {
            let req = fwd
                .build(&outseta, &plan("/a", None), &sent, None, id, body::empty())
                .unwrap();
            req.headers()
                .get_all(&X_REQUEST_ID)
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(Some(&vetted)), [vetted]);
        assert!(ids(None).is_empty());
    }
}
