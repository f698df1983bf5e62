//! Criterion benches of the response cache: the hit path through the layer (what a warm
//! cache costs per request on top of auth and policy), its parts, and a stored miss as a
//! baseline.
//!
//! Run: `cargo bench --bench cache`. Numbers are per operation on one core; compare runs on
//! the same machine only. Each layer measurement includes one `block_on` of a current-thread
//! runtime (see the `runtime: block_on(ready)` line for that floor).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use outseta_gateway::Config;
use outseta_gateway::auth::Principal;
use outseta_gateway::body;
use outseta_gateway::cache::ResponseCache;
use outseta_gateway::cache::entry::own;
use outseta_gateway::cache::key;
use outseta_gateway::cache::status::CacheStatus;
use outseta_gateway::proxy::cache::CacheLayer;
use outseta_gateway::proxy::context::{
    Caller, Deadline, Failure, Matched, Plan, Planned, RequestContext,
};
use outseta_gateway::proxy::snapshot::Snapshot;
use outseta_gateway::rules::Credential;
use outseta_gateway::rules::canon::canonicalize;
use outseta_gateway::rules::query::Query;
use tower::{Layer, ServiceExt, service_fn};

const RULES: &str = r#"
[outseta]
domain = "bench.outseta.com"
[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
cache = "60s"
"#;

fn upstream_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        header::DATE,
        HeaderValue::from_static("Wed, 26 Nov 2026 21:43:00 GMT"),
    );
    h.insert(header::SERVER, HeaderValue::from_static("nginx"));
    h
}

fn person_body() -> Bytes {
    // The peer benchmark's origin answers 1088 bytes.
    let mut s = String::from(r#"{"Uid":"DQ2DyknW","Email":"user@example.com","#);
    while s.len() < 1060 {
        s.push_str(r#""F":"xxxxxxxxxxxxxxxx","#);
    }
    s.push_str(r#""_objectType":"Person"}"#);
    Bytes::from(s)
}

fn request(snap: &Arc<Snapshot>, uid: &str) -> Planned {
    let path = format!("/api/v1/crm/people/{uid}");
    let mut req = Request::new(body::empty());
    *req.uri_mut() = path.parse().unwrap();
    req.extensions_mut().insert(RequestContext {
        deadline: Some(Deadline((Instant::now() + Duration::from_secs(30)).into())),
        ..RequestContext::default()
    });
    Planned {
        req,
        snapshot: snap.clone(),
        matched: Matched {
            rule: snap.config.rules.rules()[0].clone(),
            params: vec![("uid".into(), uid.to_string())],
            path: canonicalize(&path).unwrap(),
            query: Query::default(),
        },
        caller: Caller {
            principal: Arc::new(Principal::anonymous()),
            bearer: None,
        },
        plan: Plan {
            method: Method::GET,
            path,
            query: None,
            credential: Credential::ApiKey,
            rule_name: "read own person".into(),
            shape: outseta_gateway::upstream::headers::Shape::new(true, false, false),
        },
    }
}

fn bench_cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let snap = Arc::new(Snapshot::new(Arc::new(
        Config::from_toml(RULES, "bench").unwrap(),
    )));
    let cache = Arc::new(ResponseCache::new(64 << 20));
    let body = person_body();
    let upstream = {
        let body = body.clone();
        service_fn(move |_req: Planned| {
            let mut rsp = Response::new(body::full(body.clone()));
            *rsp.headers_mut() = upstream_headers();
            async move { Ok::<_, Failure>(rsp) }
        })
    };
    let svc = CacheLayer::new(cache.clone()).layer(upstream);

    // Warm 1000 users' entries, as the peer benchmark's S1 does.
    rt.block_on(async {
        for i in 0..1000 {
            let r = svc
                .clone()
                .oneshot(request(&snap, &format!("U{i:07}")))
                .await
                .unwrap();
            assert_eq!(
                r.headers()["cache-status"],
                "outseta-gateway; fwd=miss; stored"
            );
        }
    });

    let mut g = c.benchmark_group("cache");
    g.bench_function("baseline: block_on(ready)", |b| {
        b.iter(|| rt.block_on(async { std::hint::black_box(1) }))
    });
    // What the pipeline builds per request anyway (subtract it from the layer numbers).
    let mut i = 0u64;
    g.bench_function("baseline: build + drop the request", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            request(&snap, &format!("U{i:07}"))
        })
    });
    g.bench_function(
        "hit: layer, 1000 keys (build request + key, lookup, response)",
        |b| {
            b.iter(|| {
                i = (i + 1) % 1000;
                let req = request(&snap, &format!("U{i:07}"));
                rt.block_on(svc.clone().oneshot(req)).unwrap()
            })
        },
    );

    let store = cache.store();
    let key = "/api/v1/crm/people/U0000001";
    g.bench_function("hit: store.get + Entry::respond", |b| {
        b.iter(|| {
            rt.block_on(async {
                let e = store.get(key).await.unwrap();
                e.respond(
                    CacheStatus::Hit { ttl: 42 }.header_value(),
                    Some(e.age(Instant::now())),
                )
            })
        })
    });
    let entry = rt.block_on(store.get(key)).unwrap();
    g.bench_function("hit: Entry::respond alone", |b| {
        b.iter(|| {
            entry.respond(
                HeaderValue::from_static("outseta-gateway; hit; ttl=42"),
                None,
            )
        })
    });
    let plan = Plan {
        method: Method::GET,
        path: "/api/v1/billing/subscriptions".into(),
        query: Some("limit=10&fields=*&Account.Uid=E9Ly3PWw".into()),
        credential: Credential::ApiKey,
        rule_name: "subs".into(),
        shape: outseta_gateway::upstream::headers::Shape::new(true, false, false),
    };
    g.bench_function("key: build with a 3-pair query (sorted)", |b| {
        b.iter(|| key::build(&plan.path, plan.query.as_deref(), plan.credential, None).len())
    });

    // Baseline: a miss that is fetched (stub upstream, no network), buffered and stored.
    let next = AtomicU64::new(0);
    let miss_cache = Arc::new(ResponseCache::new(16 << 20));
    let miss_svc = CacheLayer::new(miss_cache).layer({
        let body = body.clone();
        service_fn(move |_req: Planned| {
            let mut rsp = Response::new(body::full(body.clone()));
            *rsp.headers_mut() = upstream_headers();
            async move { Ok::<_, Failure>(rsp) }
        })
    });
    g.bench_function("miss: layer, stored (build request, stub upstream)", |b| {
        b.iter(|| {
            let req = request(&snap, &format!("M{}", next.fetch_add(1, Ordering::Relaxed)));
            rt.block_on(miss_svc.clone().oneshot(req)).unwrap()
        })
    });
    let headers = upstream_headers();
    g.bench_function(
        "store: own headers + copy body, one buffer (per stored miss)",
        |b| b.iter(|| own(&headers, &body)),
    );
    // Why entries keep a boxed slice: a cloned `HeaderMap` is slower and ~700 B larger.
    let map = upstream_headers();
    let (slice, _) = own(&map, &[]);
    g.bench_function("headers: HeaderMap::clone (3 headers)", |b| {
        b.iter(|| {
            let mut h = map.clone();
            h.insert(header::AGE, HeaderValue::from(3u64));
            h
        })
    });
    g.bench_function("headers: map from the stored slice (3 headers)", |b| {
        b.iter(|| {
            let mut h = HeaderMap::with_capacity(slice.len() + 2);
            for (k, v) in slice.iter() {
                h.append(k.clone(), v.clone());
            }
            h.insert(header::AGE, HeaderValue::from(3u64));
            h
        })
    });
    g.finish();
}

criterion_group!(benches, bench_cache);
criterion_main!(benches);
