//! The simulator's signing key: generation, JWT signing, the JWKS document and verification of
//! the simulator's own tokens.
//!
//! # Guarantees
//! - One RSA-2048 key per process, generated at start; never written anywhere.
//! - Tokens are RS256 with a header shaped like Outseta's: `typ`, `alg`, `x5t` and `kid`, where
//!   `kid` and `x5t` carry the same value (the base64url SHA-1 thumbprint of the public key).
//! - The JWKS document publishes exactly that key, with the same `kid` and `x5t`.
//! - [`Signer::verify`] accepts only RS256 tokens signed by this key whose `iss`, `aud`,
//!   `exp` and `nbf` are valid (no leeway), which is how Outseta itself treats a bearer.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate the RSA key")]
    Generate,
    #[error("cannot sign the token")]
    Sign,
    #[error("cannot serialize the token claims")]
    Claims,
}

/// Why a bearer token was refused. Display never includes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is invalid: {0}")]
    Invalid(&'static str),
}

pub struct Signer {
    key: KeyPair,
    rng: SystemRandom,
    kid: String,
    jwks: String,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Generates a fresh RSA-2048 key (a few tens of milliseconds).
    pub fn generate() -> Result<Self, KeyError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let public = key.public_key();
        let components = PublicKeyComponents::<Vec<u8>>::from(public);
        // Outseta's kid/x5t is a SHA-1 certificate thumbprint; we have no certificate, so the
        // thumbprint of the public key stands in (same length and alphabet).
        let thumb = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, public.as_ref());
        let kid = URL_SAFE_NO_PAD.encode(thumb.as_ref());
        let n = URL_SAFE_NO_PAD.encode(&components.n);
        let e = URL_SAFE_NO_PAD.encode(&components.e);
        let jwks = json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "kid": kid,
                "x5t": kid,
                "e": e,
                "n": n,
                "alg": "RS256",
            }]
        })
        .to_string();
        let decoding = DecodingKey::from_rsa_raw_components(&components.n, &components.e);
        Ok(Self {
            key,
            rng: SystemRandom::new(),
            kid,
            jwks,
            decoding,
        })
    }

    /// The key id, also used as `x5t`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document served at `/.well-known/jwks`.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// Signs `claims` as an RS256 JWT with Outseta's header layout.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, KeyError> {
        // Built by hand to keep Outseta's member order; `kid` is base64url, so no escaping.
        let header = format!(
            r#"{{"typ":"JWT","alg":"RS256","x5t":"{k}","kid":"{k}"}}"#,
            k = self.kid
        );
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Claims)?;
        let mut token = URL_SAFE_NO_PAD.encode(header.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                token.as_bytes(),
                &mut sig,
            )
            .map_err(|_| KeyError::Sign)?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(&sig));
        Ok(token)
    }

    /// Verifies a token signed by this key for `issuer`/`audience`; returns its claims.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Map<String, Value>, VerifyError> {
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = 0;
        jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
                        VerifyError::Malformed
                    }
                    K::ExpiredSignature => VerifyError::Invalid("expired"),
                    K::ImmatureSignature => VerifyError::Invalid("not yet valid"),
                    K::InvalidIssuer => VerifyError::Invalid("issuer"),
                    K::InvalidAudience => VerifyError::Invalid("audience"),
                    _ => VerifyError::Invalid("signature or claims"),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iss: &str, aud: &str, exp: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("sub".into(), json!("DQ2DyknW"));
        m.insert("iss".into(), json!(iss));
        m.insert("aud".into(), json!(aud));
        m.insert("nbf".into(), json!(1));
        m.insert("exp".into(), json!(exp));
        m
    }

    #[test]
    fn signs_verifiable_tokens_with_outseta_header() {
        let s = Signer::generate().unwrap();
        assert_eq!(s.kid().len(), 27);
        let t = s.sign(&claims("http://h:1", "h:1", 4_000_000_000)).unwrap();
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(s.kid()));
        assert_eq!(header.x5t.as_deref(), Some(s.kid()));
        let c = s.verify(&t, "http://h:1", "h:1").unwrap();
        assert_eq!(c["sub"], "DQ2DyknW");
        // The JWKS key verifies it too (what a gateway does).
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(s.jwks_json()).unwrap();
        let jwk = set.find(s.kid()).unwrap();
        assert_eq!(jwk.common.x509_sha1_fingerprint.as_deref(), Some(s.kid()));
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&["h:1"]);
        jsonwebtoken::decode::<Value>(&t, &key, &v).unwrap();
    }

    #[test]
    fn refuses_wrong_audience_expired_and_foreign_tokens() {
        let s = Signer::generate().unwrap();
        let t = s.sign(&claims("http://h:1", "h:1", 4_000_000_000)).unwrap();
        assert_eq!(
            s.verify(&t, "http://h:1", "other"),
            Err(VerifyError::Invalid("audience"))
        );
        let old = s.sign(&claims("http://h:1", "h:1", 10)).unwrap();
        assert_eq!(
            s.verify(&old, "http://h:1", "h:1"),
            Err(VerifyError::Invalid("expired"))
        );
        let other = Signer::generate().unwrap();
        let foreign = other
            .sign(&claims("http://h:1", "h:1", 4_000_000_000))
            .unwrap();
        assert!(s.verify(&foreign, "http://h:1", "h:1").is_err());
        assert_eq!(
            s.verify("nope", "http://h:1", "h:1"),
            Err(VerifyError::Malformed)
        );
    }
}
