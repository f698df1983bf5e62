//! The cache layer over a stub inner service: the failure paths that a real upstream makes
//! hard to provoke on demand (the budget's `UpstreamBusy`, leaders that fail, stall or vanish).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt, service_fn};

use super::{CACHE_STATUS, ResponseCache};
use crate::body::{self, Body};
use crate::config::Config;
use crate::error::GatewayError;
use crate::proxy::cache::CacheLayer;
use crate::proxy::context::{Caller, Deadline, Failure, Matched, Plan, Planned, RequestContext};
use crate::proxy::snapshot::Snapshot;
use crate::rules::Credential;
use crate::rules::canon::canonicalize;
use crate::rules::query::Query;

fn snapshot(sie: &str) -> Arc<Snapshot> {
    let text = format!(
        r#"
[outseta]
domain = "t.outseta.com"
[cache]
stale_while_revalidate = "0s"
stale_if_error = "{sie}"
[[rule]]
name = "r"
methods = ["GET"]
path = "/api/v1/x/{{id}}"
cache = "50ms"
"#
    );
    Arc::new(Snapshot::new(Arc::new(
        Config::from_toml(&text, "t").expect("config"),
    )))
}

fn request(snap: &Arc<Snapshot>, deadline: Duration) -> Planned {
    let path = "/api/v1/x/1";
    let mut req = Request::new(body::empty());
    *req.uri_mut() = path.parse().expect("uri");
    req.extensions_mut().insert(RequestContext {
        deadline: Some(Deadline((Instant::now() + deadline).into())),
        ..RequestContext::default()
    });
    let rule = snap.config.rules.rules()[0].clone();
    Planned {
        req,
        snapshot: snap.clone(),
        matched: Matched {
            rule,
            params: vec![("id".into(), "1".into())],
            path: canonicalize(path).expect("path"),
            query: Query::default(),
        },
        caller: Caller {
            principal: Arc::new(crate::auth::Principal::anonymous()),
            bearer: None,
        },
        plan: Plan {
            method: Method::GET,
            path: path.into(),
            query: None,
            credential: Credential::ApiKey,
            rule_name: "r".into(),
            shape: crate::upstream::headers::Shape::new(true, false, false),
        },
    }
}

fn ok(body: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(Bytes::from_static(body.as_bytes())));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

type Reply = Result<Response<Body>, GatewayError>;

/// A cache layer over a stub whose `n`-th call (from 0) is answered by `answer(n, req)`;
/// failures are seen as their `GatewayError`.
fn stack(
    cache: Arc<ResponseCache>,
    calls: Arc<AtomicUsize>,
    answer: impl Fn(usize, Request<Body>) -> BoxFuture<'static, Reply> + Clone + Send + Sync + 'static,
) -> impl tower::Service<Planned, Response = Response<Body>, Error = GatewayError, Future: Send>
+ Clone
+ Send
+ 'static {
    let stub = service_fn(move |req: Planned| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let answer = answer(n, req.req);
        async move { answer.await.map_err(Failure::from) }
    });
    CacheLayer::new(cache)
        .layer(stub)
        .map_err(|f: Failure| f.error)
}

fn status(r: &Response<Body>) -> &str {
    r.headers()
        .get(CACHE_STATUS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn text(r: Response<Body>) -> String {
    let b = r.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

/// Waits until the stub has been called `n` times (the leader is upstream).
async fn called(calls: &AtomicUsize, n: usize) {
    let start = Instant::now();
    while calls.load(Ordering::SeqCst) < n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the stub was never called"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn busy() -> GatewayError {
    GatewayError::UpstreamBusy {
        retry_after: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn budget_refusal_is_answered_stale() {
    let snap = snapshot("60s");
    let cache = Arc::new(ResponseCache::new(1 << 20));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(cache, calls.clone(), |n, _| {
        Box::pin(async move {
            match n {
                0 => Ok(ok(r#"{"v":1}"#)),
                _ => Err(busy()),
            }
        })
    });
    let r = svc
        .clone()
        .oneshot(request(&snap, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(status(&r), "outseta-gateway; fwd=miss; stored");
    tokio::time::sleep(Duration::from_millis(60)).await;
    let r = svc
        .oneshot(request(&snap, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        status(&r),
        "outseta-gateway; fwd=stale; detail=upstream-busy"
    );
    assert_eq!(text(r).await, r#"{"v":1}"#);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn budget_refusal_without_stale_is_passed_on_to_every_follower() {
    let snap = snapshot("0s");
    let cache = Arc::new(ResponseCache::new(1 << 20));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(cache, calls.clone(), |_, _| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err(busy())
        })
    });
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let svc = svc.clone();
            let req = request(&snap, Duration::from_secs(5));
            tokio::spawn(svc.oneshot(req))
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(matches!(r, Err(GatewayError::UpstreamBusy { .. })), "{r:?}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "followers do not queue again"
    );
}

#[tokio::test]
async fn a_failed_leader_does_not_poison_the_key() {
    let snap = snapshot("0s");
    let cache = Arc::new(ResponseCache::new(1 << 20));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(cache, calls.clone(), |n, _| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if n == 0 {
                Err(GatewayError::UpstreamUnavailable("refused".into()))
            } else {
                Ok(ok(r#"{"v":2}"#))
            }
        })
    });
    let leader = tokio::spawn(svc.clone().oneshot(request(&snap, Duration::from_secs(5))));
    called(&calls, 1).await;
    let followers: Vec<_> = (0..5)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(svc.oneshot(request(&snap, Duration::from_secs(5))))
        })
        .collect();
    assert!(matches!(
        leader.await.unwrap(),
        Err(GatewayError::UpstreamUnavailable(_))
    ));
    let mut seen = Vec::new();
    for f in followers {
        let r = f.await.unwrap().expect("a new leader answers");
        seen.push(status(&r).to_string());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "outseta-gateway; fwd=miss; collapsed",
            "outseta-gateway; fwd=miss; collapsed",
            "outseta-gateway; fwd=miss; collapsed",
            "outseta-gateway; fwd=miss; collapsed",
            "outseta-gateway; fwd=miss; stored",
        ]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_cancelled_leader_hands_over() {
    let snap = snapshot("0s");
    let cache = Arc::new(ResponseCache::new(1 << 20));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(cache.clone(), calls.clone(), |n, _| {
        Box::pin(async move {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            Ok(ok(r#"{"v":3}"#))
        })
    });
    let leader = tokio::spawn(svc.clone().oneshot(request(&snap, Duration::from_secs(5))));
    called(&calls, 1).await;
    let follower = tokio::spawn(svc.oneshot(request(&snap, Duration::from_secs(5))));
    tokio::time::sleep(Duration::from_millis(10)).await;
    leader.abort();
    let r = follower.await.unwrap().expect("answered");
    assert_eq!(status(&r), "outseta-gateway; fwd=miss; stored");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(cache.locks().in_flight(), 0);
}

#[tokio::test]
async fn a_stuck_leader_holds_followers_only_until_their_deadline() {
    let snap = snapshot("60s");
    let cache = Arc::new(ResponseCache::new(1 << 20));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(cache, calls.clone(), |n, _| {
        Box::pin(async move {
            if n == 0 {
                return Ok(ok(r#"{"v":4}"#));
            }
            std::future::pending::<()>().await;
            Ok(ok("unreachable"))
        })
    });
    svc.clone()
        .oneshot(request(&snap, Duration::from_secs(5)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    // The leader (call 1) never answers.
    let _stuck = tokio::spawn(svc.clone().oneshot(request(&snap, Duration::from_secs(30))));
    called(&calls, 2).await;
    let start = Instant::now();
    let r = svc
        .oneshot(request(&snap, Duration::from_millis(100)))
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        status(&r),
        "outseta-gateway; fwd=stale; detail=upstream-timeout"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the follower made no call");
}

#[tokio::test]
async fn a_stuck_leader_without_stale_times_the_follower_out() {
    let snap = snapshot("0s");
    let cache = Arc::new(ResponseCache::new(1 << 20));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = stack(cache, calls.clone(), |_, _| {
        Box::pin(async {
            std::future::pending::<()>().await;
            Ok(ok("unreachable"))
        })
    });
    let _stuck = tokio::spawn(svc.clone().oneshot(request(&snap, Duration::from_secs(30))));
    called(&calls, 1).await;
    let r = svc.oneshot(request(&snap, Duration::from_millis(50))).await;
    assert!(matches!(r, Err(GatewayError::UpstreamTimeout)), "{r:?}");
}
