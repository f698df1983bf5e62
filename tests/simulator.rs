//! The Outseta simulator end to end: bound on 127.0.0.1:0, driven with a real HTTP client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use outseta_sim::{SeedUser, SimOptions};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const KEY: &str = "Outseta sim-key:sim-secret";

struct Sim {
    base: String,
    issuer: String,
    audience: String,
    users: Vec<SeedUser>,
    tokens: Vec<(String, String)>,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn start(opts: SimOptions) -> Sim {
    Sim::serving(outseta_sim::bind(opts).await.expect("bind the simulator"))
}

impl Sim {
    /// Serves a bound simulator until [`Sim::shutdown`] or drop.
    fn serving(sim: outseta_sim::Simulator) -> Sim {
        let base = sim.base_url();
        let issuer = sim.issuer();
        let audience = sim.audience();
        let users = sim.users();
        let tokens = users
            .iter()
            .map(|u| (u.email.clone(), sim.mint_token(&u.email).expect("mint")))
            .collect();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(sim.serve(async move {
            let _ = stopped.await;
        }));
        Sim {
            base,
            issuer,
            audience,
            users,
            tokens,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// No rate limit: for tests that are not about it.
async fn unlimited() -> Sim {
    start(SimOptions {
        rate: 0,
        ..SimOptions::default()
    })
    .await
}

impl Sim {
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        if let Some(c) = content_type {
            req = req.header(header::CONTENT_TYPE, c);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let rsp = self.client.request(req).await.expect("response");
        let status = rsp.status();
        let headers = rsp.headers().clone();
        let body = rsp.into_body().collect().await.expect("body").to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> Reply {
        self.call(Method::GET, path, auth, None, "").await
    }

    async fn put_json(&self, path: &str, auth: &str, body: Value) -> Reply {
        self.call(
            Method::PUT,
            path,
            Some(auth),
            Some("application/json"),
            &body.to_string(),
        )
        .await
    }

    fn user(&self, email: &str) -> &SeedUser {
        self.users
            .iter()
            .find(|u| u.email == email)
            .expect("seeded user")
    }

    fn bearer(&self, email: &str) -> String {
        let t = &self
            .tokens
            .iter()
            .find(|(e, _)| e == email)
            .expect("token")
            .1;
        format!("bearer {t}")
    }

    async fn login(&self, content_type: &str, body: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/v1/tokens",
            None,
            Some(content_type),
            body,
        )
        .await
    }

    /// Fetches the JWKS over HTTP and verifies `token` as a gateway would (RS256, by kid).
    async fn verify(&self, token: &str) -> Value {
        let jwks: JwkSet = serde_json::from_slice(&self.get("/.well-known/jwks", None).await.body)
            .expect("JWKS document");
        let header = jsonwebtoken::decode_header(token).expect("header");
        assert_eq!(header.alg, Algorithm::RS256);
        assert!(header.kid.is_some());
        assert_eq!(
            header.kid, header.x5t,
            "Outseta puts the same value in kid and x5t"
        );
        let jwk = jwks
            .find(header.kid.as_deref().unwrap_or(""))
            .expect("kid in JWKS");
        let key = DecodingKey::from_jwk(jwk).expect("RSA key");
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .expect("token verifies against the JWKS")
            .claims
    }

    async fn stats(&self) -> Value {
        self.get("/__sim/stats", None).await.json()
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(()) => {}
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
    }
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().expect("items array")
}

/// The JWKS document is one the gateway's own parser takes, found by `kid` and by `x5t`
/// (a unit test of the simulator's key module before the simulator became its own crate).
#[tokio::test]
async fn the_gateways_jwks_parser_accepts_the_document() {
    let sim = outseta_sim::bind(SimOptions::default())
        .await
        .expect("bind the simulator");
    let kid = sim.kid();
    let sim = Sim::serving(sim);
    let reply = sim.get("/.well-known/jwks", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let set =
        outseta_gateway::auth::jwks::KeySet::parse(&reply.body).expect("the gateway parses it");
    assert_eq!(set.len(), 1);
    assert!(set.find(Some(&kid), None).is_some());
    assert!(set.find(None, Some(&kid)).is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn lists_have_outseta_shape_and_offset_is_a_page_index() {
    let sim = unlimited().await;
    let all = sim.get("/api/v1/crm/people", Some(KEY)).await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(
        all.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let all = all.json();
    assert_eq!(
        all["metadata"],
        json!({"limit": 25, "offset": 0, "total": 6})
    );
    assert_eq!(items(&all).len(), 6);
    assert!(items(&all).iter().all(|p| p["_objectType"] == "Person"));

    let page1 = sim
        .get("/api/v1/crm/people?limit=2&offset=1", Some(KEY))
        .await
        .json();
    assert_eq!(
        page1["metadata"],
        json!({"limit": 2, "offset": 1, "total": 6})
    );
    let uids: Vec<&Value> = items(&page1).iter().map(|p| &p["Uid"]).collect();
    assert_eq!(uids, [&items(&all)[2]["Uid"], &items(&all)[3]["Uid"]]);

    // Query keys bind case-insensitively; limit is capped at 100 without child objects.
    let big = sim
        .get("/api/v1/crm/accounts?LIMIT=1000&Fields=Uid,Name", Some(KEY))
        .await
        .json();
    assert_eq!(big["metadata"]["limit"], 100);
    assert_eq!(items(&big).len(), 3);

    for path in [
        "/api/v1/billing/plans",
        "/api/v1/billing/planfamilies",
        "/api/v1/billing/subscriptions",
        "/api/v1/billing/invoices",
        "/api/v1/support/cases",
    ] {
        let v = sim.get(path, Some(KEY)).await;
        assert_eq!(v.status, StatusCode::OK, "{path}");
        let v = v.json();
        assert!(v["metadata"]["total"].as_u64().unwrap() >= 2, "{path}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn dotted_filters_bind_in_any_key_case() {
    let sim = unlimited().await;
    let acme = sim.user("alice@example.com").account_uid.clone();
    for key in ["Account.Uid", "account.uid", "ACCOUNT.UID"] {
        let v = sim
            .get(
                &format!("/api/v1/billing/subscriptions?{key}={acme}&fields=*,Account.Uid"),
                Some(KEY),
            )
            .await
            .json();
        assert_eq!(v["metadata"]["total"], 2, "{key}");
        assert!(
            items(&v)
                .iter()
                .all(|s| s["Account"]["Uid"] == acme.as_str())
        );
    }
    let alice = sim.user("alice@example.com").person_uid.clone();
    for key in ["FromPerson.Uid", "fromperson.uid"] {
        let v = sim
            .get(
                &format!("/api/v1/support/cases?{key}={alice}&fields=Subject,FromPerson.Uid"),
                Some(KEY),
            )
            .await
            .json();
        assert_eq!(v["metadata"]["total"], 2, "{key}");
        assert!(
            items(&v)
                .iter()
                .all(|c| c["FromPerson"]["Uid"] == alice.as_str())
        );
    }
    let none = sim
        .get("/api/v1/support/cases?FromPerson.Uid=nobody", Some(KEY))
        .await
        .json();
    assert_eq!(none["metadata"]["total"], 0);
    assert_eq!(items(&none).len(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn fields_select_and_expand() {
    let sim = unlimited().await;
    let uid = sim.user("bob@example.com").person_uid.clone();
    let path = format!("/api/v1/crm/people/{uid}");

    // Default: main object + immediate children; deeper references null.
    let d = sim.get(&path, Some(KEY)).await.json();
    assert_eq!(d["Email"], "bob@example.com");
    assert_eq!(d["PersonAccount"][0]["IsPrimary"], false);
    assert!(d["PersonAccount"][0]["Account"].is_null());

    let only = sim
        .get(&format!("{path}?fields=Uid,Email"), Some(KEY))
        .await
        .json();
    let mut keys: Vec<&String> = only.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["Email", "Uid", "_objectType"]);

    let star = sim.get(&format!("{path}?fields=*"), Some(KEY)).await.json();
    assert!(star["PersonAccount"].is_null());
    assert_eq!(star["FirstName"], "Bob");

    let deep = sim
        .get(
            &format!("{path}?fields=Uid,PersonAccount.Account.CurrentSubscription.Plan.*"),
            Some(KEY),
        )
        .await
        .json();
    let plan = &deep["PersonAccount"][0]["Account"]["CurrentSubscription"]["Plan"];
    assert_eq!(plan["Name"], "Pro");
    assert!(plan["PlanFamily"].is_null());
    sim.shutdown().await;
}

#[tokio::test]
async fn login_with_json_and_form_bodies_gives_outseta_tokens() {
    let sim = unlimited().await;
    let bob = sim.user("bob@example.com").clone();
    let json_login = sim
        .login(
            "application/json",
            &json!({"username": "bob@example.com", "password": "demo-password",
                    "grant_type": "password", "client_id": "outseta_auth_widget"})
            .to_string(),
        )
        .await;
    assert_eq!(json_login.status, StatusCode::OK);
    let body = json_login.json();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["refresh_token"].is_string());
    let claims = sim.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], bob.person_uid.as_str());
    assert_eq!(claims["nameid"], bob.person_uid.as_str());
    assert_eq!(claims["email"], "bob@example.com");
    assert_eq!(claims["name"], "Bob Brown");
    assert_eq!(claims["outseta:accountUid"], bob.account_uid.as_str());
    assert_eq!(claims["outseta:isPrimary"], "0");
    assert!(claims["outseta:planUid"].is_string());
    assert!(claims["outseta:subscriptionUid"].is_string());
    assert_eq!(claims["iss"], sim.issuer.as_str());
    assert_eq!(claims["iss"], format!("http://{}", sim.audience));
    assert_eq!(claims["aud"], sim.audience.as_str());
    let (nbf, exp) = (
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(exp > nbf);

    // Form body, at the root path Outseta also serves.
    let form = sim
        .call(
            Method::POST,
            "/tokens",
            None,
            Some("application/x-www-form-urlencoded"),
            "username=alice%40example.com&password=demo-password&grant_type=password",
        )
        .await;
    assert_eq!(form.status, StatusCode::OK);
    let claims = sim
        .verify(form.json()["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["outseta:isPrimary"], "1");
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_are_invalid_grant() {
    let sim = unlimited().await;
    for body in [
        json!({"username": "bob@example.com", "password": "wrong"}),
        json!({"username": "bob@example.com"}),
        json!({"username": "nobody@example.com", "password": "demo-password"}),
    ] {
        let r = sim.login("application/json", &body.to_string()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(&r.body[..], b"invalid_grant");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn the_api_key_mints_a_token_for_any_user() {
    let sim = unlimited().await;
    let carol = sim.user("carol@example.com").clone();
    let r = sim
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(KEY),
            Some("application/json"),
            r#"{"username":"carol@example.com"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let claims = sim.verify(r.json()["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], carol.person_uid.as_str());
    assert_eq!(claims["outseta:isPrimary"], "1");

    let wrong = sim
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some("Outseta sim-key:wrong"),
            Some("application/json"),
            r#"{"username":"carol@example.com"}"#,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_need_the_api_key() {
    let sim = unlimited().await;
    let bob = sim.bearer("bob@example.com");
    let uid = sim.user("bob@example.com").person_uid.clone();
    for path in [
        "/api/v1/crm/people".to_owned(),
        format!("/api/v1/crm/people/{uid}"),
        "/api/v1/crm/accounts".to_owned(),
        "/api/v1/support/cases".to_owned(),
    ] {
        assert_eq!(
            sim.get(&path, None).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            sim.get(&path, Some("Outseta sim-key:nope")).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            sim.get(&path, Some("Outseta other:sim-secret"))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            sim.get(&path, Some(&bob)).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(sim.get(&path, Some(KEY)).await.status, StatusCode::OK);
    }
    // Public: plans and plan families need nothing.
    assert_eq!(
        sim.get("/api/v1/billing/plans", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sim.get("/api/v1/billing/planfamilies", None).await.status,
        StatusCode::OK
    );
    // Profile is bearer-only.
    assert_eq!(
        sim.get("/api/v1/profile", Some(KEY)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Unknown routes and methods.
    assert_eq!(
        sim.get("/api/v1/nope", Some(KEY)).await.status,
        StatusCode::NOT_FOUND
    );
    let del = sim
        .call(
            Method::DELETE,
            &format!("/api/v1/crm/people/{uid}"),
            Some(KEY),
            None,
            "",
        )
        .await;
    assert_eq!(del.status, StatusCode::METHOD_NOT_ALLOWED);
    sim.shutdown().await;
}

#[tokio::test]
async fn bearer_callers_are_scoped_on_subscriptions_and_invoices() {
    let sim = unlimited().await;
    let acme = sim.user("alice@example.com").account_uid.clone();
    let alice = sim.bearer("alice@example.com");
    let bob = sim.bearer("bob@example.com");

    let subs = sim
        .get(
            "/api/v1/billing/subscriptions?fields=Uid,Account.Uid",
            Some(&bob),
        )
        .await
        .json();
    // Every account Bob is related to: Acme's two subscriptions and Globex's one.
    let globex = sim.user("carol@example.com").account_uid.clone();
    assert_eq!(subs["metadata"]["total"], 3);
    let mut accounts: Vec<&str> = items(&subs)
        .iter()
        .filter_map(|s| s["Account"]["Uid"].as_str())
        .collect();
    accounts.sort_unstable();
    let mut want = vec![acme.as_str(), acme.as_str(), globex.as_str()];
    want.sort_unstable();
    assert_eq!(accounts, want);
    // A member who is not the primary contact sees no invoices; the primary sees theirs.
    let none = sim.get("/api/v1/billing/invoices", Some(&bob)).await.json();
    assert_eq!(none["metadata"]["total"], 0);
    let own = sim
        .get(
            "/api/v1/billing/invoices?fields=Number,Subscription.Account.Uid",
            Some(&alice),
        )
        .await
        .json();
    assert_eq!(own["metadata"]["total"], 3);
    assert!(
        items(&own)
            .iter()
            .all(|i| i["Subscription"]["Account"]["Uid"] == acme.as_str())
    );
    // The API key sees everyone's.
    let all = sim.get("/api/v1/billing/invoices", Some(KEY)).await.json();
    assert_eq!(all["metadata"]["total"], 5);
    // A forged bearer is refused.
    assert_eq!(
        sim.get("/api/v1/billing/invoices", Some("bearer x.y.z"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_per_key_limit_answers_429_and_stats_count_it() {
    let sim = start(SimOptions::default()).await; // 4/s, burst 4
    let started = Instant::now();
    let futs = (0..30).map(|_| sim.get("/api/v1/crm/accounts?fields=Uid", Some(KEY)));
    let replies = futures_util::future::join_all(futs).await;
    // The burst of 4, plus what the GCRA refilled (4/s) while the batch was in flight.
    let refilled = (started.elapsed().as_secs_f64() * 4.0).ceil() as usize;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let limited = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(ok + limited, 30);
    assert!(
        ok >= 4 && ok <= 4 + refilled,
        "{ok} passed, {refilled} refilled"
    );
    assert!(limited >= 20, "{limited} limited");
    // Anonymous and bearer traffic is not limited by the API key's budget.
    assert_eq!(
        sim.get("/api/v1/billing/plans", None).await.status,
        StatusCode::OK
    );
    let stats = sim.stats().await;
    assert_eq!(stats["rate_limited"], limited as u64);
    let by = &stats["requests"]["GET /api/v1/crm/accounts"];
    assert_eq!(by["429"], limited as u64);
    assert_eq!(by["200"], ok as u64);
    sim.shutdown().await;
}

#[tokio::test]
async fn stats_count_by_template_and_status_and_reset() {
    let sim = unlimited().await;
    let uid = sim.user("dan@example.com").person_uid.clone();
    sim.get(&format!("/api/v1/crm/people/{uid}"), Some(KEY))
        .await;
    sim.get("/api/v1/crm/people/nobody12", Some(KEY)).await;
    sim.get(&format!("/api/v1/crm/people/{uid}"), None).await;
    sim.get("/nowhere", None).await;
    let s = sim.stats().await;
    assert_eq!(
        s["requests"]["GET /api/v1/crm/people/{uid}"],
        json!({"200": 1, "401": 1, "404": 1})
    );
    assert_eq!(s["requests"]["GET (unmatched)"], json!({"404": 1}));
    assert_eq!(s["total"], 4);
    assert_eq!(s["rate_limited"], 0);
    let reset = sim
        .call(Method::POST, "/__sim/reset-stats", None, None, "")
        .await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(sim.stats().await["total"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn profile_returns_the_bearers_person_and_writes_are_visible() {
    let sim = unlimited().await;
    let erin = sim.user("erin@example.com").clone();
    let auth = sim.bearer("erin@example.com");
    let me = sim.get("/api/v1/profile", Some(&auth)).await;
    assert_eq!(me.status, StatusCode::OK);
    let me = me.json();
    assert_eq!(me["Uid"], erin.person_uid.as_str());
    assert_eq!(me["Email"], "erin@example.com");
    assert_eq!(me["PersonAccount"][0]["IsPrimary"], true);
    assert!(me.get("Password").is_none());

    // PUT /profile then GET.
    let put = sim
        .put_json("/api/v1/profile", &auth, json!({"FirstName": "Erina"}))
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.json()["FullName"], "Erina Evans");
    let again = sim
        .get("/api/v1/profile?fields=FirstName", Some(&auth))
        .await
        .json();
    assert_eq!(again["FirstName"], "Erina");

    // PUT person then GET, through the admin API.
    let path = format!("/api/v1/crm/people/{}", erin.person_uid);
    let put = sim
        .put_json(&path, KEY, json!({"Title": "Head of Product"}))
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(
        sim.get(&path, Some(KEY)).await.json()["Title"],
        "Head of Product"
    );

    // PUT account then GET.
    let path = format!("/api/v1/crm/accounts/{}", erin.account_uid);
    let put = sim.put_json(&path, KEY, json!({"Name": "Initrode"})).await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(sim.get(&path, Some(KEY)).await.json()["Name"], "Initrode");

    // Validation errors in Outseta's 400 shape, nothing changed.
    let bad = sim
        .put_json(
            &format!("/api/v1/crm/people/{}", erin.person_uid),
            KEY,
            json!({"Email": "not-an-email"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = bad.json();
    assert!(bad["ErrorMessage"].is_string());
    let e = &bad["EntityValidationErrors"][0];
    assert_eq!(e["TypeName"], "Person");
    assert_eq!(e["ValidationErrors"][0]["PropertyName"], "Email");
    assert_eq!(e["ValidationErrors"][0]["ErrorCode"], "outsetaError");
    assert_eq!(
        sim.get("/api/v1/profile", Some(&auth)).await.json()["Email"],
        "erin@example.com"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn password_change_and_case_creation() {
    let sim = unlimited().await;
    let frank = sim.user("frank@example.com").clone();
    let auth = sim.bearer("frank@example.com");
    let wrong = sim
        .put_json(
            "/api/v1/profile/password",
            &auth,
            json!({"ExistingPassword": "nope", "NewPassword": "s3cret-pass"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong.json()["EntityValidationErrors"][0]["ValidationErrors"][0]["ErrorCode"],
        "currentPasswordMismatch"
    );
    let ok = sim
        .put_json(
            "/api/v1/profile/password",
            &auth,
            json!({"ExistingPassword": "demo-password", "NewPassword": "s3cret-pass"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let old = sim
        .login(
            "application/json",
            r#"{"username":"frank@example.com","password":"demo-password"}"#,
        )
        .await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST);
    let new = sim
        .login(
            "application/json",
            r#"{"username":"frank@example.com","password":"s3cret-pass"}"#,
        )
        .await;
    assert_eq!(new.status, StatusCode::OK);

    let created = sim
        .call(
            Method::POST,
            "/api/v1/support/cases?fields=*,FromPerson.Uid",
            Some(KEY),
            Some("application/json"),
            &json!({"Subject": "Help", "Body": "<p>Please</p>",
                    "FromPerson": {"Uid": frank.person_uid}, "Source": 1})
            .to_string(),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let created = created.json();
    assert_eq!(created["Subject"], "Help");
    assert_eq!(created["FromPerson"]["Uid"], frank.person_uid.as_str());
    let uid = created["Uid"].as_str().unwrap().to_owned();
    assert_eq!(uid.len(), 8);
    let list = sim
        .get(
            &format!(
                "/api/v1/support/cases?FromPerson.Uid={}&fields=Uid",
                frank.person_uid
            ),
            Some(KEY),
        )
        .await
        .json();
    assert!(items(&list).iter().any(|c| c["Uid"] == uid.as_str()));
    assert_eq!(
        sim.get(&format!("/api/v1/support/cases/{uid}"), Some(KEY))
            .await
            .status,
        StatusCode::OK
    );
    let invalid = sim
        .call(
            Method::POST,
            "/api/v1/support/cases",
            Some(KEY),
            Some("application/json"),
            r#"{"Subject":"x","FromPerson":{"Uid":"nobody"},"Source":9}"#,
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    sim.shutdown().await;
}

#[tokio::test]
async fn transactions_are_per_account_and_latency_is_added() {
    let sim = start(SimOptions {
        rate: 0,
        latency: Duration::from_millis(150),
        ..SimOptions::default()
    })
    .await;
    let acme = sim.user("alice@example.com").account_uid.clone();
    let started = Instant::now();
    let tx = sim
        .get(
            &format!("/api/v1/billing/transactions/{acme}?fields=Amount,Account.Uid"),
            Some(KEY),
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(tx.status, StatusCode::OK);
    let tx = tx.json();
    assert!(tx["metadata"]["total"].as_u64().unwrap() >= 3);
    assert!(
        items(&tx)
            .iter()
            .all(|t| t["Account"]["Uid"] == acme.as_str())
    );
    // Control endpoints are not delayed.
    let started = Instant::now();
    sim.stats().await;
    assert!(started.elapsed() < Duration::from_millis(150));
    sim.shutdown().await;
}
