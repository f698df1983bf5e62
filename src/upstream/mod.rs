//! The outbound HTTP client: hyper-util's pooled legacy client over rustls (HTTP/1.1 and h2
//! chosen by ALPN), shared by forwarding and JWKS fetches.
//!
//! # Guarantees
//! - Every call made through [`send`] has a deadline; on expiry the error is
//!   [`UpstreamError::Timeout`], never a hang.
//! - Errors are classified by hyper's predicates, not by message text.
//! - Each TCP connection (under TLS) is [`crate::cork::Corked`]: a request written right after
//!   a response was read waits one scheduler turn, so a batch's requests leave together.
//! - Trust: the platform's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured through
//!   `rustls-native-certs`), falling back to the bundled Mozilla roots when none are found,
//!   plus any extra roots the embedding program passes (tests use a private CA).

pub mod headers;

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;

use crate::body::Body;
use crate::cork::CorkedConnector;

pub type HttpClient = Client<HttpsConnector<CorkedConnector<HttpConnector>>, Body>;

/// Why an upstream call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to the upstream")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the request body exceeds the limit")]
    BodyTooLarge,
    /// The client's request body failed while it streamed upstream (bad framing, cut short).
    #[error("the request body could not be read")]
    ClientBody,
    #[error("the upstream connection failed")]
    Protocol(#[source] hyper_util::client::legacy::Error),
}

/// Builds the shared client. `connect_timeout` bounds TCP+TLS setup.
pub fn client(
    extra_roots: &[CertificateDer<'static>],
    connect_timeout: Duration,
) -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| format!("invalid extra root certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));

    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(CorkedConnector(http));

    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https))
}

/// Sends one request with a deadline on the response head.
pub async fn send(
    client: &HttpClient,
    req: Request<Body>,
    timeout: Duration,
) -> Result<Response<Incoming>, UpstreamError> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(UpstreamError::Timeout),
        Ok(Ok(rsp)) => Ok(rsp),
        Ok(Err(e)) => Err(classify(e)),
    }
}

fn classify(e: hyper_util::client::legacy::Error) -> UpstreamError {
    if e.is_connect() {
        return UpstreamError::Connect(e);
    }
    // A request body that hit `max_request_body`, or that the client broke, while streaming
    // surfaces as a body error: it is the client's fault, not the upstream's.
    if crate::body::chain_has::<http_body_util::LengthLimitError>(&e) {
        return UpstreamError::BodyTooLarge;
    }
    if crate::body::chain_has::<crate::body::ClientBodyError>(&e) {
        return UpstreamError::ClientBody;
    }
    UpstreamError::Protocol(e)
}
