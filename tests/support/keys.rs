//! RSA signing keys and JWT minting for tests, including the malformed and hostile tokens.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

pub struct SigningKey {
    pub kid: String,
    pair: KeyPair,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_string(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("RSA keygen"),
        }
    }

    /// The public JWK as Outseta publishes it (kid and x5t equal).
    pub fn jwk(&self) -> Value {
        let pk = self.pair.public_key();
        let n = pk.modulus().big_endian_without_leading_zero().to_vec();
        let e = pk.exponent().big_endian_without_leading_zero().to_vec();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256",
            "kid": self.kid, "x5t": self.kid,
            "n": B64.encode(&n), "e": B64.encode(&e),
        })
    }

    /// The public key as SPKI DER (for the HS256-with-public-key confusion attack).
    pub fn public_der(&self) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer;
        let der: aws_lc_rs::encoding::PublicKeyX509Der =
            self.pair.public_key().as_der().expect("der");
        der.as_ref().to_vec()
    }

    /// Signs `header.payload` with RS256.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        let msg = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(payload.to_string())
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg.as_bytes(),
                &mut sig,
            )
            .expect("sign");
        format!("{msg}.{}", B64.encode(sig))
    }

    /// A standard header with this key's kid (and x5t).
    pub fn header(&self) -> Value {
        json!({"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid})
    }

    pub fn token(&self, payload: &Value) -> String {
        self.sign(&self.header(), payload)
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Outseta-shaped claims for a user.
pub fn claims(iss: &str, aud: &str, sub: &str, account: &str) -> Value {
    let now = now();
    json!({
        "nbf": now - 10, "exp": now + 3600, "iss": iss, "aud": aud,
        "client_id": format!("{aud}.resource-owner"), "scope": ["openid", "outseta", "profile"],
        "sub": sub, "nameid": sub, "email": format!("{sub}@example.com"), "name": "Test User",
        "outseta:accountUid": account, "outseta:isPrimary": "1", "amr": ["password"],
    })
}

/// `alg: none` with no signature.
pub fn alg_none(payload: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "none"});
    format!(
        "{}.{}.",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string())
    )
}

/// HS256 signed with the RSA public key bytes as the HMAC secret (algorithm confusion).
pub fn hs256_with(secret: &[u8], kid: &str, payload: &Value) -> String {
    use aws_lc_rs::hmac;
    let header = json!({"typ": "JWT", "alg": "HS256", "kid": kid});
    let msg = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, msg.as_bytes());
    format!("{msg}.{}", B64.encode(tag.as_ref()))
}

/// Replaces the payload of a signed token (signature no longer matches).
pub fn tamper(token: &str, payload: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = B64.encode(payload.to_string());
    parts.join(".")
}
