//! The Outseta signing keys (JWKS), with the hygiene described in docs/behaviour.md ("On the wire").
//!
//! # Guarantees
//! - Keys are fetched before the gateway reports ready ([`Jwks::is_ready`]) and refreshed in
//!   the background ([`Jwks::run_refresher`]).
//! - An unknown `kid`/`x5t` triggers at most one refetch per [`REFETCH_COOLDOWN`], coalesced:
//!   concurrent callers wait for the one fetch in flight. Between refetches every unknown id
//!   is answered from memory, so a flood of forged ids costs no fetches.
//! - A failed or empty fetch never replaces the last good key set.
//! - Only RSA keys usable for RS256 signatures are kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{Method, Request, StatusCode, Uri, header};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};

use crate::body;
use crate::telemetry::metrics as m;
use crate::upstream::{self, HttpClient};

/// Minimum time between two refetches caused by unknown key ids.
pub const REFETCH_COOLDOWN: Duration = Duration::from_secs(30);
const MAX_JWKS_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS request failed: {0}")]
    Request(#[from] upstream::UpstreamError),
    #[error("JWKS endpoint answered {0}")]
    Status(StatusCode),
    #[error("JWKS body could not be read")]
    Body,
    #[error("JWKS document is not valid JSON with a `keys` array")]
    Parse,
    #[error("JWKS has no usable RS256 key")]
    NoKeys,
}

/// One fetched key set, indexed by `kid` and by `x5t`.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    by_x5t: HashMap<String, Arc<DecodingKey>>,
    count: usize,
}

impl KeySet {
    /// Parses a JWKS document, keeping RSA signature keys usable for RS256.
    pub fn parse(bytes: &[u8]) -> Result<Self, JwksError> {
        let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| JwksError::Parse)?;
        let keys = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or(JwksError::Parse)?;
        let mut set = KeySet::default();
        for raw in keys {
            // One odd key (an unknown kty, say) must not discard the others.
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
                continue;
            }
            if !matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)) {
                continue;
            }
            if !matches!(
                jwk.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            ) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let key = Arc::new(key);
            let mut indexed = false;
            if let Some(kid) = &jwk.common.key_id {
                set.by_kid.insert(kid.clone(), key.clone());
                indexed = true;
            }
            if let Some(x5t) = &jwk.common.x509_sha1_fingerprint {
                set.by_x5t.insert(x5t.clone(), key.clone());
                indexed = true;
            }
            if indexed {
                set.count += 1;
            }
        }
        if set.count == 0 {
            return Err(JwksError::NoKeys);
        }
        Ok(set)
    }

    /// The key for a token header: by `kid`, else by `x5t`.
    pub fn find(&self, kid: Option<&str>, x5t: Option<&str>) -> Option<Arc<DecodingKey>> {
        kid.and_then(|k| self.by_kid.get(k))
            .or_else(|| x5t.and_then(|t| self.by_x5t.get(t)))
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Why no key was found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookupError {
    /// The id is not in the (possibly just refetched) key set.
    Unknown,
    /// No key set has ever been fetched.
    Unavailable,
}

/// The live key set and its fetcher.
pub struct Jwks {
    url: Uri,
    client: HttpClient,
    timeout: Duration,
    keys: ArcSwap<KeySet>,
    ready: AtomicBool,
    last_refetch: std::sync::Mutex<Option<Instant>>,
    refetch_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Jwks {
    pub fn new(url: Uri, client: HttpClient, timeout: Duration) -> Self {
        Self {
            url,
            client,
            timeout,
            keys: ArcSwap::from_pointee(KeySet::default()),
            ready: AtomicBool::new(false),
            last_refetch: std::sync::Mutex::new(None),
            refetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Installs a key set directly (embedding programs and benches; `serve` always fetches).
    pub fn set_keys(&self, set: KeySet) {
        self.keys.store(Arc::new(set));
        self.ready.store(true, Ordering::Release);
    }

    /// True once a key set has been fetched.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Fetches the JWKS and, if it holds usable keys, makes it the live set.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        match self.fetch().await {
            Ok(set) => {
                let n = set.len();
                metrics::counter!(m::JWKS_FETCHES, "result" => "ok").increment(1);
                metrics::gauge!(m::JWKS_KEYS).set(n as f64);
                self.keys.store(Arc::new(set));
                self.ready.store(true, Ordering::Release);
                Ok(n)
            }
            Err(e) => {
                metrics::counter!(m::JWKS_FETCHES, "result" => "error").increment(1);
                tracing::warn!(error = %e, url = %self.url, "JWKS fetch failed; keeping the last good key set");
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.url.clone())
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("outseta-gateway/", env!("CARGO_PKG_VERSION")),
            )
            .body(body::empty())
            .map_err(|_| JwksError::Parse)?;
        let rsp = upstream::send(&self.client, req, self.timeout).await?;
        if rsp.status() != StatusCode::OK {
            return Err(JwksError::Status(rsp.status()));
        }
        let bytes = tokio::time::timeout(
            self.timeout,
            body::collect_limited(body::boxed(rsp.into_body()), MAX_JWKS_BYTES),
        )
        .await
        .map_err(|_| JwksError::Body)?
        .map_err(|_| JwksError::Body)?;
        KeySet::parse(&bytes)
    }

    /// The key for a token header, refetching (rarely) for an unknown id.
    pub async fn key(
        &self,
        kid: Option<&str>,
        x5t: Option<&str>,
    ) -> Result<Arc<DecodingKey>, KeyLookupError> {
        if let Some(k) = self.keys.load().find(kid, x5t) {
            return Ok(k);
        }
        // Coalesce: one refetch in flight; the others wait for it and look again. The cooldown
        // is checked only after that wait: a caller arriving while the refetch that the
        // cooldown counts from is still in flight must see its result, not a miss.
        let _guard = self.refetch_lock.lock().await;
        if let Some(k) = self.keys.load().find(kid, x5t) {
            return Ok(k);
        }
        if self.in_cooldown() {
            return Err(self.miss());
        }
        if let Ok(mut last) = self.last_refetch.lock() {
            *last = Some(Instant::now());
        }
        tracing::info!("unknown signing key id; refetching the JWKS");
        let _ = self.refresh().await;
        self.keys.load().find(kid, x5t).ok_or_else(|| self.miss())
    }

    fn miss(&self) -> KeyLookupError {
        if self.is_ready() {
            KeyLookupError::Unknown
        } else {
            KeyLookupError::Unavailable
        }
    }

    fn in_cooldown(&self) -> bool {
        match self.last_refetch.lock() {
            Ok(last) => last.is_some_and(|t| t.elapsed() < REFETCH_COOLDOWN),
            // A poisoned lock means a panic elsewhere; refuse refetches rather than storm.
            Err(_) => true,
        }
    }

    /// Fetches until the first success (backing off from 1 s to 30 s), then every `every`.
    /// Runs until the task is aborted.
    pub async fn run_refresher(self: Arc<Self>, every: Duration) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if self.is_ready() {
                tokio::time::sleep(every).await;
                let _ = self.refresh().await;
            } else {
                match self.refresh().await {
                    Ok(n) => tracing::info!(keys = n, url = %self.url, "JWKS fetched"),
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_rs256_signature_keys() {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "x5t": "ta", "n": n, "e": "AQAB", "use": "sig", "alg": "RS256"},
            {"kty": "RSA", "kid": "enc", "n": n, "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "kid": "ps", "n": n, "e": "AQAB", "alg": "PS256"},
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "weird", "kid": "w"},
            {"kty": "RSA", "x5t": "only-x5t", "n": n, "e": "AQAB"}
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.find(Some("a"), None).is_some());
        assert!(
            set.find(Some("unknown"), Some("ta")).is_some(),
            "falls back to x5t"
        );
        assert!(set.find(None, Some("only-x5t")).is_some());
        assert!(set.find(Some("enc"), None).is_none());
        assert!(set.find(Some("h"), None).is_none());
        assert!(set.find(Some("ps"), None).is_none());
        assert!(matches!(
            KeySet::parse(b"{\"keys\":[]}"),
            Err(JwksError::NoKeys)
        ));
        assert!(matches!(KeySet::parse(b"nope"), Err(JwksError::Parse)));
    }
}
