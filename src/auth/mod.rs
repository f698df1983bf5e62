//! Token verification: `Authorization: bearer <jwt>` → [`Principal`], or [`AuthError`].
//!
//! # Position in the stack
//! After routing (the rule's `auth` mode decides whether a token is required), before policy.
//!
//! # Guarantees
//! - RS256 only; the key is found by `kid`, else `x5t` ([`jwks`]).
//! - `exp`/`nbf` with leeway, `iss` and `aud` pinned from config; `exp` and `sub` required.
//! - No token, key, or claim value appears in an `AuthError`'s text.

pub mod jwks;
pub mod verify;

use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// A verified caller (or the anonymous one). Shared as `Arc<Principal>`.
#[derive(Debug)]
pub struct Principal {
    /// The verified payload, ready for rule evaluation (`{}` when anonymous).
    pub claims: crate::rules::expr::Claims,
    /// `exp`, seconds since the epoch (0 when anonymous).
    pub exp: u64,
    /// `nbf`, if present.
    pub nbf: Option<u64>,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self {
            claims: crate::rules::expr::Claims::empty(),
            exp: 0,
            nbf: None,
        }
    }

    /// The token's `sub` (Person Uid); `None` for anonymous callers.
    pub fn sub(&self) -> Option<&Arc<str>> {
        self.claims.sub()
    }
}

/// Why a token was refused. `reason()` is the metric label, `description()` the RFC 6750
/// `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token algorithm is not RS256")]
    Algorithm,
    #[error("token header has no kid or x5t")]
    NoKeyId,
    #[error("token signing key is unknown")]
    UnknownKey,
    #[error("signing keys are not available yet")]
    KeysUnavailable,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    Issuer,
    #[error("token audience is not accepted")]
    Audience,
    #[error("token lacks a required claim")]
    Claims,
}

impl AuthError {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::NoKeyId => "no_key_id",
            Self::UnknownKey => "unknown_key",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Claims => "claims",
        }
    }

    /// Failures that cannot change for the same token bytes (safe to remember).
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::Malformed
                | Self::Algorithm
                | Self::NoKeyId
                | Self::Signature
                | Self::Expired
                | Self::Issuer
                | Self::Audience
                | Self::Claims
        )
    }
}

/// The bearer token of a request: `Ok(None)` when there is none.
///
/// The scheme is matched case-insensitively (`bearer`, `Bearer`, `BEARER`); another scheme
/// counts as no bearer token. Several `Authorization` headers are refused as malformed.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim();
    if token.is_empty() {
        return Ok(None);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in ["bearer abc", "Bearer abc", "BEARER abc", "bEaReR   abc "] {
            assert_eq!(bearer(&h(v)), Ok(Some("abc")), "{v}");
        }
        assert_eq!(bearer(&h("Outseta k:s")), Ok(None));
        assert_eq!(bearer(&h("Bearer")), Ok(None));
        assert_eq!(bearer(&HeaderMap::new()), Ok(None));
        let mut two = h("Bearer a");
        two.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer(&two), Err(AuthError::Malformed));
    }

    #[test]
    fn a_value_with_bytes_beyond_ascii_is_malformed() {
        for raw in [
            &b"Bearer abc\xe9"[..],
            b"Bearer \xc3\xa9",
            b"\xffBearer abc",
        ] {
            let mut m = HeaderMap::new();
            m.insert(AUTHORIZATION, HeaderValue::from_bytes(raw).unwrap());
            assert_eq!(bearer(&m), Err(AuthError::Malformed), "{raw:?}");
        }
        // horizontal tab is a valid header byte and whitespace here
        assert_eq!(bearer(&h("Bearer\tabc")), Ok(None));
        assert_eq!(bearer(&h("Bearer abc\t")), Ok(Some("abc")));
    }

    /// Header bytes: a scheme-like prefix (any case, odd spacing, other schemes) and then
    /// anything, printable or not.
    fn authorization_bytes() -> impl Strategy<Value = Vec<u8>> {
        let prefix = prop::sample::select(vec![
            "Bearer ",
            "bearer ",
            "BEARER ",
            "bEaReR  ",
            " Bearer ",
            "Bearer\t",
            "Bearer",
            "Bearer \t ",
            "Basic ",
            "Outseta ",
            "Bearerx ",
            "",
        ]);
        let byte = prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => any::<u8>()];
        (prefix, prop::collection::vec(byte, 0..40))
            .prop_map(|(p, rest)| [p.as_bytes(), &rest].concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any value a header can hold: `bearer` never panics; bytes beyond visible ASCII or
        /// a second header are malformed; a token is returned exactly when the trimmed value
        /// is the `bearer` scheme (any case), a space and a non-blank rest, and it is that rest
        /// trimmed.
        #[test]
        fn any_header_value_yields_its_token_none_or_malformed(
            raw in authorization_bytes(), twice in prop::bool::weighted(0.1),
        ) {
            let Ok(value) = HeaderValue::from_bytes(&raw) else {
                return Ok(());
            };
            let mut m = HeaderMap::new();
            m.insert(AUTHORIZATION, value.clone());
            if twice {
                m.append(AUTHORIZATION, value);
                prop_assert_eq!(bearer(&m), Err(AuthError::Malformed));
                return Ok(());
            }
            let got = bearer(&m);
            if !raw.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
                prop_assert_eq!(got, Err(AuthError::Malformed), "{:?}", raw);
                return Ok(());
            }
            let text = std::str::from_utf8(&raw).unwrap().trim();
            let expected = text
                .get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| text[7..].trim())
                .filter(|t| !t.is_empty());
            prop_assert_eq!(got, Ok(expected), "{:?}", text);
            if let Ok(Some(t)) = got {
                prop_assert!(!t.starts_with([' ', '\t']) && !t.ends_with([' ', '\t']));
                prop_assert!(text.ends_with(t));
            }
        }
    }
}
