//! The verifier: signature and claims checks, with two bounded caches keyed by the SHA-256 of
//! the token (never the token itself).
//!
//! # Cost model (measured by `benches/hot_path.rs`)
//! An RS256 verify is ~24 µs; a cache hit is a hash and a lookup. Verified tokens are kept
//! until `exp` (checked on every hit) or `jwks_refresh`, whichever is first. Tokens refused
//! after a signature check, for a reason that cannot change (bad signature, expired, wrong
//! iss/aud, missing claim), are remembered too, so a flood of the same bad token costs no RSA
//! work. Concurrent first sightings of one token share a single verification (moka's
//! `try_get_with`): a burst of requests with a fresh token — an SPA's page load, a stampede —
//! costs one RS256 check.
//!
//! # Bounds
//! A token whose header alone condemns it (not a JWT, not RS256, no key id) is refused before
//! either cache is touched: it costs a header decode and leaves nothing behind. Each cache is
//! weighed by what an entry really costs, moka's bookkeeping included ([`VERIFIED_BYTES`],
//! [`REJECTED_BYTES`]; the per-entry figures are measured, see `bench/RESULTS.md`), so under any
//! flood of unique tokens the two together hold at most 20 MiB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use sha2::{Digest, Sha256};

use super::jwks::{Jwks, KeyLookupError};
use super::{AuthError, Principal};
use crate::rules::expr::claims_value;

/// Bound of the verified-token cache, in bytes of resident memory.
pub const VERIFIED_BYTES: u64 = 16 << 20;
/// Bound of the refused-token cache, in bytes of resident memory.
pub const REJECTED_BYTES: u64 = 4 << 20;
/// Resident bytes of one refused-token entry: key, value and moka's per-entry bookkeeping
/// (measured: 317 bytes with the gateway's allocator).
const REJECTED_WEIGHT: u32 = 320;
/// Fixed part of a verified-token entry's cost (moka's bookkeeping, the `Principal`).
const VERIFIED_BASE: u32 = 1024;
/// Bytes of resident claims per byte of the token's base64url payload segment. The claims are
/// held twice (the rule engine's value map and a string index); measured: an Outseta payload of
/// 634 JSON bytes (846 base64url characters) costs ≈ 6,000 bytes in all.
const VERIFIED_PER_PAYLOAD_BYTE: u32 = 6;

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
            .max_capacity(VERIFIED_BYTES)
            .weigher(|_k: &TokenHash, v: &Verified| v.weight)
            .time_to_live(max_age.max(Duration::from_secs(1)))
            .build_with_hasher(DigestHasher::default());
        let rejected = moka::sync::Cache::builder()
            .name("rejected-tokens")
            .max_capacity(REJECTED_BYTES)
            .weigher(|_k: &TokenHash, _v: &AuthError| REJECTED_WEIGHT)
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
        let header = header_of(token)?;
        // Boxed: the first sighting (coalescing, JWKS, RS256) is a large state machine, and
        // inlining it would make every cached verification allocate and move it.
        Box::pin(self.verify_first(hash, token, header)).await
    }

    /// A token seen in neither cache: one signature check per token at a time.
    async fn verify_first(
        &self,
        hash: TokenHash,
        token: &str,
        header: Header,
    ) -> Result<Arc<Principal>, AuthError> {
        // moka runs one initialisation at a time per key. A refusal is remembered inside it,
        // and each initialisation looks there first, so a caller that missed both caches just
        // before an earlier one finished does not check the signature again.
        let first = async {
            if let Some(e) = self.rejected.get(&hash) {
                return Err(e);
            }
            match self.verify_signed(token, header).await {
                Ok(principal) => Ok(Verified {
                    principal,
                    weight: verified_weight(token),
                }),
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
        let header = header_of(token)?;
        self.verify_signed(token, header).await
    }

    /// The signature and claims checks of a token whose header passed [`header_of`].
    async fn verify_signed(
        &self,
        token: &str,
        header: Header,
    ) -> Result<Arc<Principal>, AuthError> {
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

/// The token's header, if it names RS256 and a key id: the checks that need no key and no
/// memory.
fn header_of(token: &str) -> Result<Header, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(AuthError::Algorithm);
    }
    if header.kid.is_none() && header.x5t.is_none() {
        return Err(AuthError::NoKeyId);
    }
    Ok(header)
}

/// The resident cost of a verified token's cache entry, from its payload segment's length.
fn verified_weight(token: &str) -> u32 {
    let payload = token.split('.').nth(1).map_or(token.len(), str::len);
    u32::try_from(payload)
        .unwrap_or(u32::MAX)
        .saturating_mul(VERIFIED_PER_PAYLOAD_BYTE)
        .saturating_add(VERIFIED_BASE)
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{self, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use proptest::prelude::*;

    /// An RS256 key and its one-key JWKS.
    struct Signer(KeyPair);

    impl Signer {
        fn generate() -> Self {
            Self(KeyPair::generate(KeySize::Rsa2048).unwrap())
        }

        fn kid(&self) -> &str {
            "k1"
        }

        fn jwks(&self) -> String {
            let pk = self.0.public_key();
            serde_json::json!({"keys": [{
                "kty": "RSA", "kid": self.kid(), "alg": "RS256", "use": "sig",
                "n": B64.encode(pk.modulus().big_endian_without_leading_zero()),
                "e": B64.encode(pk.exponent().big_endian_without_leading_zero()),
            }]})
            .to_string()
        }

        fn sign(&self, claims: &serde_json::Value) -> String {
            let msg = format!(
                "{}.{}",
                B64.encode(format!(r#"{{"alg":"RS256","kid":"{}"}}"#, self.kid())),
                B64.encode(claims.to_string())
            );
            let mut sig = vec![0u8; self.0.public_modulus_len()];
            self.0
                .sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    msg.as_bytes(),
                    &mut sig,
                )
                .unwrap();
            format!("{msg}.{}", B64.encode(sig))
        }
    }

    const ISS: &str = "http://t.outseta.com";
    const AUD: &str = "t.outseta.com";

    fn verifier(signer: &Signer) -> Verifier {
        let client = crate::upstream::client(&[], Duration::from_secs(1)).unwrap();
        let jwks = Arc::new(Jwks::new(
            "http://127.0.0.1:9/jwks".parse().unwrap(),
            client,
            Duration::from_secs(1),
        ));
        jwks.set_keys(super::super::jwks::KeySet::parse(signer.jwks().as_bytes()).unwrap());
        Verifier::new(jwks, ISS, AUD, Duration::ZERO, Duration::from_secs(600))
    }

    fn claims(sub: &str) -> serde_json::Value {
        serde_json::json!({"iss": ISS, "aud": AUD, "sub": sub, "exp": now_secs() + 600})
    }

    #[tokio::test]
    async fn tokens_condemned_by_their_header_leave_nothing_behind() {
        let signer = Signer::generate();
        let v = verifier(&signer);
        let kid = signer.kid().to_string();
        for i in 0..2000u32 {
            let garbage = format!("x{i}.y.z");
            assert_eq!(v.verify(&garbage).await.unwrap_err(), AuthError::Malformed);
            let hs = format!(
                "{}.{}.sig{i}",
                B64.encode(format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#)),
                B64.encode("{}")
            );
            assert_eq!(v.verify(&hs).await.unwrap_err(), AuthError::Algorithm);
            let no_kid = format!("{}.e30.s{i}", B64.encode(r#"{"alg":"RS256"}"#));
            assert_eq!(v.verify(&no_kid).await.unwrap_err(), AuthError::NoKeyId);
        }
        v.rejected.run_pending_tasks();
        v.verified.run_pending_tasks().await;
        assert_eq!(v.rejected.entry_count(), 0);
        assert_eq!(v.verified.entry_count(), 0);
        assert_eq!(v.signature_checks(), 0);
    }

    #[tokio::test]
    async fn a_flood_of_unique_bad_signatures_stays_within_the_refused_budget() {
        let signer = Signer::generate();
        let v = verifier(&signer);
        let good = signer.sign(&claims("P1"));
        let (signed, _) = good.rsplit_once('.').unwrap();
        let fits = (REJECTED_BYTES / u64::from(REJECTED_WEIGHT)) as usize;
        for i in 0..fits + 2000 {
            let bad = format!("{signed}.{}", B64.encode(format!("{i:0256}")));
            assert_eq!(v.verify(&bad).await.unwrap_err(), AuthError::Signature);
        }
        v.rejected.run_pending_tasks();
        assert!(v.rejected.weighted_size() <= REJECTED_BYTES);
        assert!(v.rejected.entry_count() > 0);
        // A refusal that cost a signature check is remembered: the same token again costs none.
        let bad = format!("{signed}.{}", B64.encode([7u8; 256]));
        let _ = v.verify(&bad).await;
        let checks = v.signature_checks();
        assert_eq!(v.verify(&bad).await.unwrap_err(), AuthError::Signature);
        assert_eq!(v.signature_checks(), checks);
        // And the good token still verifies.
        assert!(v.verify(&good).await.is_ok());
    }

    #[test]
    fn a_verified_entry_weighs_what_an_outseta_token_costs() {
        // An Outseta payload of 634 JSON bytes is 846 base64url characters: ≈ 6,000 bytes
        // resident (see bench/RESULTS.md).
        let token = format!("h.{}.s", "a".repeat(846));
        let w = verified_weight(&token);
        assert!((5_500..=6_500).contains(&w), "{w}");
    }

    /// One key, a verifier that knows it (its JWKS URL refuses connections, so an unknown
    /// id costs one failed refetch and then the cooldown), a runtime for the property tests,
    /// and a valid token.
    struct Fixture {
        runtime: tokio::runtime::Runtime,
        verifier: Verifier,
        signer: Signer,
        token: String,
    }

    static FIXTURE: std::sync::LazyLock<Fixture> = std::sync::LazyLock::new(|| {
        let signer = Signer::generate();
        let verifier = verifier(&signer);
        let token = signer.sign(&claims("DQ2DyknW"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Fixture {
            runtime,
            verifier,
            signer,
            token,
        }
    });

    fn verify_uncached(token: &str) -> Result<Arc<Principal>, AuthError> {
        let f = &*FIXTURE;
        f.runtime.block_on(f.verifier.verify_uncached(token))
    }

    /// A JWT-shaped string: a header with any `alg` and a known, unknown or missing key id,
    /// any payload, any signature; each part sometimes replaced by arbitrary text.
    fn jwt_shaped() -> impl Strategy<Value = String> {
        let kid = prop_oneof![
            Just(Some(FIXTURE.signer.kid().to_string())),
            Just(Some("unknown".to_string())),
            Just(None),
            "\\PC{0,8}".prop_map(Some),
        ];
        let alg = prop::sample::select(vec![
            "RS256", "rs256", "HS256", "none", "ES256", "PS256", "",
        ]);
        let header = (alg, kid, any::<bool>()).prop_map(|(alg, kid, x5t)| {
            let mut h = serde_json::json!({"typ": "JWT", "alg": alg});
            if let Some(k) = kid {
                h[if x5t { "x5t" } else { "kid" }] = serde_json::Value::String(k);
            }
            B64.encode(h.to_string())
        });
        let payload = prop_oneof![
            Just(
                B64.encode(
                    serde_json::json!({"iss": ISS, "aud": AUD, "sub": "x", "exp": u64::MAX})
                        .to_string()
                )
            ),
            prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| B64.encode(b)),
        ];
        let signature = prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| B64.encode(b));
        let part = |p: BoxedStrategy<String>| prop_oneof![6 => p, 1 => "\\PC{0,12}", 1 => "[A-Za-z0-9_=+/.-]{0,12}"];
        (
            part(header.boxed()),
            part(payload.boxed()),
            part(signature.boxed()),
            prop::sample::select(vec![".", "..", ""]),
        )
            .prop_map(|(h, p, s, sep)| format!("{h}.{p}{sep}{s}"))
    }

    #[test]
    fn the_fixture_token_verifies() {
        let principal = verify_uncached(&FIXTURE.token).unwrap();
        assert_eq!(principal.sub().map(|s| &**s), Some("DQ2DyknW"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any string, JWT-shaped or not: `verify_uncached` never panics and refuses it
        /// (none of these is signed by the key), and `verify` refuses it for the same reason.
        #[test]
        fn any_string_is_refused(token in prop_oneof![any::<String>(), "[A-Za-z0-9_.-]{0,80}", jwt_shaped()]) {
            let uncached = verify_uncached(&token);
            prop_assert!(uncached.is_err(), "{token:?} verified");
            let f = &*FIXTURE;
            let cached = f.runtime.block_on(f.verifier.verify(&token)).map(|_| ());
            prop_assert_eq!(cached, uncached.map(|_| ()));
        }

        /// Any one-character change to a valid token (replaced, inserted or removed, in any
        /// part) is refused.
        #[test]
        fn any_change_to_a_valid_token_is_refused(
            at in any::<prop::sample::Index>(),
            op in 0u8..3,
            c in prop_oneof![3 => "[A-Za-z0-9_-]", 1 => "[.=+/ ]", 1 => "\\PC"],
        ) {
            let token = &FIXTURE.token;
            let i = at.index(token.len() + 1);
            let changed = match op {
                0 if i < token.len() => format!("{}{c}{}", &token[..i], &token[i + 1..]),
                1 if i < token.len() => format!("{}{}", &token[..i], &token[i + 1..]),
                _ => format!("{}{c}{}", &token[..i], &token[i..]),
            };
            prop_assume!(changed != *token);
            prop_assert!(verify_uncached(&changed).is_err(), "{changed:?} verified");
        }
    }
}
