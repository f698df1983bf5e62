//! Reading the `Authorization` header the way Outseta does: `Outseta <key>:<secret>` for the
//! API key, `bearer <jwt>` for a user (schemes case-insensitive).
//!
//! # Guarantees
//! - The key is compared in constant time; nothing here logs or returns a credential.

use http::{HeaderMap, header};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    /// `Outseta key:secret`; `valid` says whether it is the simulator's key.
    ApiKey {
        key: String,
        valid: bool,
    },
    Bearer(String),
    /// Some other scheme, or an unreadable header.
    Other,
}

/// The configured API key and secret.
#[derive(Clone)]
pub struct ApiKey {
    pub key: String,
    pub secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ApiKey {
    fn matches(&self, presented: &str) -> bool {
        let expected = format!("{}:{}", self.key, self.secret);
        aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes())
            .is_ok()
    }
}

pub fn parse(headers: &HeaderMap, api: &ApiKey) -> Credential {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credential::None;
    };
    let Ok(value) = value.to_str() else {
        return Credential::Other;
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("outseta") {
        let key = rest.split(':').next().unwrap_or("").to_owned();
        Credential::ApiKey {
            valid: api.matches(rest),
            key,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Credential::Bearer(rest.to_owned())
    } else {
        Credential::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn parses_both_schemes_case_insensitively() {
        let api = ApiKey {
            key: "k".into(),
            secret: "s".into(),
        };
        assert_eq!(
            parse(&with("Outseta k:s"), &api),
            Credential::ApiKey {
                key: "k".into(),
                valid: true
            }
        );
        assert_eq!(
            parse(&with("OUTSETA k:wrong"), &api),
            Credential::ApiKey {
                key: "k".into(),
                valid: false
            }
        );
        assert_eq!(
            parse(&with("bearer abc"), &api),
            Credential::Bearer("abc".into())
        );
        assert_eq!(parse(&with("Basic xyz"), &api), Credential::Other);
        assert_eq!(parse(&HeaderMap::new(), &api), Credential::None);
        assert!(format!("{api:?}").contains("<redacted>"));
    }
}
