//! The verifier: signature and claims checks, with two bounded caches keyed by the SHA-256 of
//! the token (never the token itself).
//!
//! # Cost model (measured by `benches/hot_path.rs`)
//! An RS256 verify is ~24 µs; a cache hit is a hash and a lookup. Verified tokens are kept
//! until `exp` (checked on every hit) or `jwks_refresh`, whichever is first; tokens refused
//! for a reason that cannot change (bad signature, expired, wrong iss/aud, malformed) are
//! remembered too, so a flood of the same bad token costs no RSA work. Concurrent first
//! sightings of one token share a single verification (moka's `try_get_with`): a burst of
//! requests with a fresh token — an SPA's page load, a stampede — costs one RS256 check.
//!
//! # Bounds
//! Both caches are weighted by approximate bytes ([`CACHE_BYTES`] each).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use sha2::{Digest, Sha256};

use super::jwks::{Jwks, KeyLookupError};
use super::{AuthError, Principal};
use crate::rules::expr::claims_value;

/// Upper bound, in approximate bytes, of each token cache.
pub const CACHE_BYTES: u64 = 64 << 20;

type TokenHash = [u8; 32];

#[derive(Clone)]
struct Verified {
    principal: Arc<Principal>,
    weight: u32,
}

pub struct Verifier {
    jwks: Arc<Jwks>,
    validation: Validation,
    leeway: u64,
    verified: moka::future::Cache<TokenHash, Verified, DigestHasher>,
    rejected: moka::sync::Cache<TokenHash, AuthError, DigestHasher>,
    /// RS256 checks made (each costs tens of microseconds; see [`Verifier::signature_checks`]).
    signature_checks: AtomicU64,
}

/// The token caches' keys are SHA-256 digests, uniformly distributed whatever the caller
/// sends, so a fast seeded hash is enough (SipHash costs more than the lookup it serves).
type DigestHasher = foldhash::fast::RandomState;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Verifier {
    /// `max_age` bounds how long a verified token is trusted without re-checking its
    /// signature against the current key set (the JWKS refresh interval).
    pub fn new(
        jwks: Arc<Jwks>,
        issuer: &str,
        audience: &str,
        leeway: Duration,
        max_age: Duration,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = leeway.as_secs();
        let verified = moka::future::Cache::builder()
            .name("verified-tokens")
            .max_capacity(CACHE_BYTES)
            .weigher(|_k: &TokenHash, v: &Verified| v.weight)
            .time_to_live(max_age.max(Duration::from_secs(1)))
            .build_with_hasher(DigestHasher::default());
        let rejected = moka::sync::Cache::builder()
            .name("rejected-tokens")
            .max_capacity(CACHE_BYTES)
            .weigher(|_k: &TokenHash, _v: &AuthError| 64)
            .time_to_live(Duration::from_secs(3600))
            .build_with_hasher(DigestHasher::default());
        Self {
            jwks,
            validation,
            leeway: leeway.as_secs(),
            verified,
            rejected,
            signature_checks: AtomicU64::new(0),
        }
    }

    pub fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    /// Verifies a bearer token. Concurrent calls with one token that is in neither cache make
    /// one verification between them (the others wait for its answer), so a burst of
    /// requests carrying a fresh token costs one RS256 check, not one each.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let hash: TokenHash = Sha256::digest(token.as_bytes()).into();
        let now = now_secs();
        if let Some(v) = self.verified.get(&hash).await {
            if now > v.principal.exp.saturating_add(self.leeway) {
                self.verified.invalidate(&hash).await;
                self.rejected.insert(hash, AuthError::Expired);
                return Err(AuthError::Expired);
            }
            return Ok(v.principal);
        }
        if let Some(e) = self.rejected.get(&hash) {
            return Err(e);
        }
        // Boxed: the first sighting (coalescing, JWKS, RS256) is a large state machine, and
        // inlining it would make every cached verification allocate and move it.
        Box::pin(self.verify_first(hash, token)).await
    }

    /// A token seen in neither cache: one signature check per token at a time.
    async fn verify_first(
        &self,
        hash: TokenHash,
        token: &str,
    ) -> Result<Arc<Principal>, AuthError> {
        // moka runs one initialisation at a time per key. A refusal is remembered inside it,
        // and each initialisation looks there first, so a caller that missed both caches just
        // before an earlier one finished does not check the signature again.
        let first = async {
            if let Some(e) = self.rejected.get(&hash) {
                return Err(e);
            }
            match self.verify_uncached(token).await {
                Ok(principal) => {
                    let weight = u32::try_from(token.len().saturating_mul(3).saturating_add(256))
                        .unwrap_or(u32::MAX);
                    Ok(Verified { principal, weight })
                }
                Err(e) => {
                    if e.is_permanent() {
                        self.rejected.insert(hash, e);
                    }
                    Err(e)
                }
            }
        };
        self.verified
            .try_get_with(hash, first)
            .await
            .map(|v| v.principal)
            .map_err(|e| *e)
    }

    /// How many RS256 signature checks this verifier has made.
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
    }

    /// Verifies without consulting or filling the token caches (benches measure this).
    pub async fn verify_uncached(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Algorithm);
        }
        if header.kid.is_none() && header.x5t.is_none() {
            return Err(AuthError::NoKeyId);
        }
        let key = self
            .jwks
            .key(header.kid.as_deref(), header.x5t.as_deref())
            .await
            .map_err(|e| match e {
                KeyLookupError::Unknown => AuthError::UnknownKey,
                KeyLookupError::Unavailable => AuthError::KeysUnavailable,
            })?;
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &self.validation)
            .map_err(|e| map_error(e.kind()))?;
        let json = data.claims;
        let exp = json
            .get("exp")
            .and_then(|e| e.as_u64())
            .ok_or(AuthError::Claims)?;
        let nbf = json.get("nbf").and_then(|n| n.as_u64());
        let claims = claims_value(&json);
        if claims.sub().is_none() {
            return Err(AuthError::Claims);
        }
        Ok(Arc::new(Principal { claims, exp, nbf }))
    }
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject => AuthError::Claims,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => AuthError::Algorithm,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::Malformed,
        _ => AuthError::Signature,
    }
}
