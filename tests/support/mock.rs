//! A mock Outseta for tests: JWKS (rotatable, can go down, counts fetches) and API routes
//! that record exactly what the gateway sent them.
//!
//! Routes:
//! - `GET /.well-known/jwks`
//! - `GET /api/v1/crm/people/{uid}` → `{"Uid": uid, "Email": …}`
//! - `GET /api/v1/billing/invoices/{uid}` → `{"Uid": uid, "Subscription": {"Account": {"Uid": <owner>}}, "Secret": "…"}`
//!   where the owner is set with `set_invoice_owner`
//! - `GET /slow/...` paths sleep for the configured delay first
//! - `GET /api/v1/profile` → also `"auth_tail"`: the last 8 characters of the `Authorization`
//!   it received (tells users apart without echoing credentials)
//! - anything else → 200 `{"ok": true, "path": …, "n": <GETs of this path so far>,
//!   "data": <last body written to this path, or null>}`; a write (`PUT`/`PATCH`/`POST`/
//!   `DELETE`) stores its JSON body as that path's `data`
//! - a `pad=N` query parameter adds `"pad": "xxx…"` (N bytes) to any JSON answer
//!
//! Knobs: `set_status` (every API answer), `set_response_header` (added to every API
//! answer), `set_delay` (`/slow` paths), `hits` (requests seen for one path).
//!
//! Every API request is recorded (method, path+query, headers, body, arrival time). Replies
//! queued with `push_reply` answer the next API requests, one each, before the routes above.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::keys::SigningKey;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: std::time::Instant,
}

type Scripted = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct State {
    jwks: Mutex<Vec<Value>>,
    jwks_down: AtomicBool,
    jwks_fetches: AtomicU64,
    seen: Mutex<Vec<Seen>>,
    delay: Mutex<Duration>,
    invoice_owner: Mutex<String>,
    status_override: Mutex<Option<(u16, String)>>,
    extra_headers: Mutex<Vec<(String, String)>>,
    data: Mutex<HashMap<String, Value>>,
    gets: Mutex<HashMap<String, u64>>,
    scripted: Mutex<VecDeque<Scripted>>,
}

#[derive(Clone)]
pub struct MockOutseta {
    pub addr: SocketAddr,
    state: Arc<State>,
    pub tls: Option<Arc<TlsMaterial>>,
}

pub struct TlsMaterial {
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    pub ca_pem: String,
}

impl MockOutseta {
    /// Plain HTTP on 127.0.0.1:0.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        Self::start_inner(keys, false).await
    }

    /// HTTPS (rustls, a private CA for `localhost` and 127.0.0.1) on 127.0.0.1:0.
    pub async fn start_tls(keys: &[&SigningKey]) -> Self {
        Self::start_inner(keys, true).await
    }

    async fn start_inner(keys: &[&SigningKey], tls: bool) -> Self {
        let state = Arc::new(State::default());
        *state.jwks.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
        *state.invoice_owner.lock().unwrap() = "acct-1".into();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (acceptor, material) = if tls {
            let (acceptor, ca_der, ca_pem) = tls_acceptor();
            (
                Some(acceptor),
                Some(Arc::new(TlsMaterial { ca_der, ca_pem })),
            )
        } else {
            (None, None)
        };
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(a) => {
                            if let Ok(s) = a.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            state,
            tls: material,
        }
    }

    pub fn base_url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks", self.base_url())
    }

    pub fn set_keys(&self, keys: &[&SigningKey]) {
        *self.state.jwks.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn set_jwks_down(&self, down: bool) {
        self.state.jwks_down.store(down, Ordering::SeqCst);
    }

    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, d: Duration) {
        *self.state.delay.lock().unwrap() = d;
    }

    pub fn set_invoice_owner(&self, owner: &str) {
        *self.state.invoice_owner.lock().unwrap() = owner.to_string();
    }

    /// Every API response becomes this status and body.
    pub fn set_status(&self, status: u16, body: &str) {
        *self.state.status_override.lock().unwrap() = Some((status, body.to_string()));
    }

    /// Back to normal answers after `set_status`.
    pub fn clear_status(&self) {
        *self.state.status_override.lock().unwrap() = None;
    }

    /// Adds a header to every API answer (e.g. `cache-control: no-store`).
    pub fn set_response_header(&self, name: &str, value: &str) {
        self.state
            .extra_headers
            .lock()
            .unwrap()
            .push((name.to_string(), value.to_string()));
    }

    pub fn clear_response_headers(&self) {
        self.state.extra_headers.lock().unwrap().clear();
    }

    /// API requests seen whose path (without the query) is `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path_and_query.split('?').next() == Some(path))
            .count()
    }

    /// The next API request gets this reply (replies queue up, one per request).
    pub fn push_reply(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.state
            .scripted
            .lock()
            .unwrap()
            .push_back((status, headers, body.to_string()));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn clear_seen(&self) {
        self.state.seen.lock().unwrap().clear();
    }
}

fn json_rsp(status: u16, v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("set-cookie", "outseta=1")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

async fn handle(
    st: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/.well-known/jwks" {
        st.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        if st.jwks_down.load(Ordering::SeqCst) {
            return Ok(json_rsp(503, &json!({"Message": "down"})));
        }
        let keys = st.jwks.lock().unwrap().clone();
        return Ok(json_rsp(200, &json!({ "keys": keys })));
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    st.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path_and_query: pq.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
        at: std::time::Instant::now(),
    });
    let scripted = st.scripted.lock().unwrap().pop_front();
    if let Some((status, headers, body)) = scripted {
        let mut rsp = Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json");
        for (k, v) in headers {
            rsp = rsp.header(k, v);
        }
        return Ok(rsp.body(Full::new(Bytes::from(body))).unwrap());
    }
    let delay = *st.delay.lock().unwrap();
    if path.starts_with("/slow") || path.contains("/slow") {
        tokio::time::sleep(delay).await;
    }
    let extra = st.extra_headers.lock().unwrap().clone();
    let with_extra = |mut rsp: Response<Full<Bytes>>| {
        for (k, v) in &extra {
            rsp.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        rsp
    };
    if let Some((status, body)) = st.status_override.lock().unwrap().clone() {
        return Ok(with_extra(
            Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        ));
    }
    let query: HashMap<String, String> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let is_write = matches!(parts.method.as_str(), "PUT" | "PATCH" | "POST" | "DELETE");
    if is_write && let Ok(v) = serde_json::from_slice::<Value>(&body) {
        st.data.lock().unwrap().insert(path.clone(), v);
    }
    let n = if parts.method == http::Method::GET {
        let mut gets = st.gets.lock().unwrap();
        let n = gets.entry(path.clone()).or_insert(0);
        *n += 1;
        *n
    } else {
        0
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut v = match segs.as_slice() {
        ["api", "v1", "crm", "people", uid] => {
            json!({"Uid": uid, "Email": format!("{uid}@example.com"), "_objectType": "Person"})
        }
        ["api", "v1", "billing", "invoices", uid] => {
            let owner = st.invoice_owner.lock().unwrap().clone();
            json!({"Uid": uid, "Amount": 10, "Secret": "invoice-body-marker", "Subscription": {"Account": {"Uid": owner}}})
        }
        ["api", "v1", "profile"] => {
            let auth = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let tail = &auth[auth.len().saturating_sub(8)..];
            json!({"ok": true, "path": path, "query": query, "method": parts.method.as_str(), "n": n, "auth_tail": tail})
        }
        _ => {
            let data = st
                .data
                .lock()
                .unwrap()
                .get(&path)
                .cloned()
                .unwrap_or(Value::Null);
            json!({"ok": true, "path": path, "query": query, "method": parts.method.as_str(), "n": n, "data": data})
        }
    };
    if let Some(pad) = query.get("pad").and_then(|p| p.parse::<usize>().ok()) {
        v["pad"] = Value::String("x".repeat(pad));
    }
    Ok(with_extra(json_rsp(200, &v)))
}

fn tls_acceptor() -> (
    tokio_rustls::TlsAcceptor,
    rustls::pki_types::CertificateDer<'static>,
    String,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
        ca.der().clone(),
        ca.pem(),
    )
}
