//! Criterion benches of the hot path: token verification (cached and uncached), rule match +
//! CEL evaluation, and building the upstream request.
//!
//! Run: `cargo bench --bench hot_path`. Numbers are per operation on one core; compare runs
//! on the same machine only.

#[path = "../tests/support/keys.rs"]
#[allow(dead_code)]
mod keys;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use outseta_gateway::Config;
use outseta_gateway::auth::jwks::{Jwks, KeySet};
use outseta_gateway::auth::verify::Verifier;
use outseta_gateway::config::secrets::ApiCredential;
use outseta_gateway::proxy::context::{Caller, Plan};
use outseta_gateway::proxy::forward::Forward;
use outseta_gateway::rules::Credential;
use outseta_gateway::rules::canon::canonicalize;
use outseta_gateway::rules::expr::{Input, claims_value};
use outseta_gateway::rules::query::Query;

const ISS: &str = "http://bench.outseta.com";
const AUD: &str = "bench.outseta.com";

fn verifier(key: &keys::SigningKey) -> Arc<Verifier> {
    let client = outseta_gateway::upstream::client(&[], Duration::from_secs(1)).unwrap();
    let jwks = Arc::new(Jwks::new(
        "http://127.0.0.1:9/jwks".parse().unwrap(),
        client,
        Duration::from_secs(1),
    ));
    let doc = serde_json::json!({"keys": [key.jwk()]});
    jwks.set_keys(KeySet::parse(doc.to_string().as_bytes()).unwrap());
    Arc::new(Verifier::new(
        jwks,
        ISS,
        AUD,
        Duration::from_secs(30),
        Duration::from_secs(600),
    ))
}

fn bench_verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = keys::SigningKey::generate("k1");
    let v = verifier(&key);
    let token = key.token(&keys::claims(ISS, AUD, "DQ2DyknW", "E9Ly3PWw"));
    rt.block_on(v.verify(&token)).unwrap();
    let mut bad = token.clone();
    bad.pop();
    bad.push(if token.ends_with('A') { 'B' } else { 'A' });
    let mut g = c.benchmark_group("verify");
    g.bench_function("cached token", |b| {
        b.iter(|| rt.block_on(v.verify(&token)).unwrap())
    });
    g.bench_function("uncached RS256", |b| {
        b.iter(|| rt.block_on(v.verify_uncached(&token)).unwrap())
    });
    let _ = rt.block_on(v.verify(&bad));
    g.bench_function("remembered bad signature", |b| {
        b.iter(|| rt.block_on(v.verify(&bad)).unwrap_err())
    });
    g.finish();
}

fn bench_rules(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.toml"))
        .unwrap();
    let config = Config::from_toml(&text, "gateway.toml").unwrap();
    let rules = config.rules.clone();
    let claims = claims_value(&keys::claims(ISS, AUD, "DQ2DyknW", "E9Ly3PWw"));
    let mut g = c.benchmark_group("rules");
    g.bench_function("match + when (own person, rule #5)", |b| {
        b.iter(|| {
            let path = canonicalize("/api/v1/crm/people/DQ2DyknW").unwrap();
            let query = Query::parse(None);
            let (i, params) = rules.find(&Method::GET, &path).unwrap();
            let input = Input {
                claims: &claims,
                params: &params,
                query: &query,
                method: "GET",
            };
            rules
                .rule(i)
                .unwrap()
                .authorize(rules.root(), &input)
                .unwrap()
        })
    });
    g.bench_function("match + query_set (subscriptions, rule #7)", |b| {
        b.iter(|| {
            let path = canonicalize("/api/v1/billing/subscriptions").unwrap();
            let query = Query::parse(Some("Account.Uid=x&limit=10&fields=*"));
            let (i, params) = rules.find(&Method::GET, &path).unwrap();
            let input = Input {
                claims: &claims,
                params: &params,
                query: &query,
                method: "GET",
            };
            rules
                .rule(i)
                .unwrap()
                .authorize(rules.root(), &input)
                .unwrap()
                .serialize()
        })
    });
    g.bench_function("CEL claims conversion (once per token)", |b| {
        let json = keys::claims(ISS, AUD, "DQ2DyknW", "E9Ly3PWw");
        b.iter(|| claims_value(&json))
    });
    g.finish();
}

fn bench_build(c: &mut Criterion) {
    let client = outseta_gateway::upstream::client(&[], Duration::from_secs(1)).unwrap();
    let fwd = Forward::new(client, Some(ApiCredential::new("key", "secret").unwrap()));
    let config =
        outseta_gateway::Config::from_toml("[outseta]\ndomain = \"yourco.outseta.com\"\n", "bench")
            .unwrap();
    let plan = Plan {
        method: Method::GET,
        path: "/api/v1/crm/people/DQ2DyknW".into(),
        query: Some("fields=*".into()),
        credential: Credential::ApiKey,
        rule_name: "read own person".into(),
        shape: outseta_gateway::upstream::headers::Shape::default(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("bearer abc.def.ghi"),
    );
    headers.insert("accept", HeaderValue::from_static("application/json"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "x-request-id",
        HeaderValue::from_static("0b0c6a9e-5a49-4a0d-9d3b-6a4f3e0e8c11"),
    );
    headers.insert("user-agent", HeaderValue::from_static("Mozilla/5.0"));
    let caller: Option<&Caller> = None;
    c.bench_function("build upstream request", |b| {
        b.iter(|| {
            fwd.build(
                &config.outseta,
                &plan,
                &headers,
                caller,
                headers.get("x-request-id"),
                outseta_gateway::body::empty(),
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench_verify, bench_rules, bench_build);
criterion_main!(benches);
