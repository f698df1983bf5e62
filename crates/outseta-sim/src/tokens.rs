//! Access tokens: Outseta's claims for a person, and the `POST /tokens` grant (password login,
//! or impersonation of any user when the API key is presented).
//!
//! # Guarantees
//! - Claims follow the observed Outseta tokens: `sub` = `nameid` = the Person Uid,
//!   `outseta:accountUid` = the account the token is bound to (the person's first
//!   membership), `outseta:isPrimary` is the string `"1"` or `"0"`, `outseta:planUid` /
//!   `outseta:subscriptionUid` are present only when that account has a current subscription,
//!   `iss` = `http://<host>`, `aud` = `<host>`, `exp` = `nbf` + [`LIFETIME_SECS`].
//! - Bodies are read as JSON or `application/x-www-form-urlencoded`, keys case-insensitive.
//! - Bad credentials (unknown user, wrong or missing password) give [`GrantError::InvalidGrant`];
//!   the caller answers 400 with the body `invalid_grant`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::keys::Signer;
use super::model::{Entity, Kind};
use super::store::Store;

/// Token lifetime: Outseta now documents `expires_in: 31536000` (about one year).
pub const LIFETIME_SECS: u64 = 31_536_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("invalid_grant")]
    InvalidGrant,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("the token could not be signed")]
    Sign,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    pub grant_type: Option<String>,
}

impl TokenRequest {
    /// Reads a JSON or form body; anything unreadable is an empty request.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Self {
        let is_form = content_type.is_some_and(|c| {
            c.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        let mut pairs: Vec<(String, String)> = Vec::new();
        let json = if is_form {
            None
        } else {
            serde_json::from_slice::<Map<String, Value>>(body).ok()
        };
        match json {
            Some(obj) => {
                for (k, v) in obj {
                    if let Some(s) = v.as_str() {
                        pairs.push((k, s.to_owned()));
                    }
                }
            }
            None => {
                for (k, v) in form_urlencoded::parse(body) {
                    pairs.push((k.into_owned(), v.into_owned()));
                }
            }
        }
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Self {
            username: get("username"),
            password: get("password"),
            grant_type: get("grant_type"),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Outseta's claims for `person`, bound to their first account.
pub fn claims(store: &Store, person: &Entity, host: &str, now: u64) -> Map<String, Value> {
    let membership = person
        .many("PersonAccount")
        .iter()
        .filter_map(|u| store.get_kind(Kind::PersonAccount, u))
        .find(|m| {
            m.one("Account")
                .is_some_and(|a| store.get_kind(Kind::Account, a).is_some())
        });
    let account = membership
        .and_then(|m| m.one("Account"))
        .and_then(|a| store.get_kind(Kind::Account, a));
    let first = person.str("FirstName").unwrap_or("");
    let last = person.str("LastName").unwrap_or("");
    let mut c = Map::new();
    c.insert("nbf".into(), json!(now));
    c.insert("exp".into(), json!(now + LIFETIME_SECS));
    c.insert("iat".into(), json!(now));
    c.insert("iss".into(), json!(format!("http://{host}")));
    c.insert("client_id".into(), json!(format!("{host}.resource-owner")));
    c.insert("scope".into(), json!(["openid", "outseta", "profile"]));
    c.insert("sub".into(), json!(person.uid));
    c.insert("auth_time".into(), json!(now));
    c.insert("idp".into(), json!("idsrv"));
    c.insert("email".into(), person.value("Email").clone());
    c.insert("email_verified".into(), json!(true));
    c.insert("given_name".into(), json!(first));
    c.insert("family_name".into(), json!(last));
    // Outseta does not trim: empty names give " ".
    c.insert("name".into(), json!(format!("{first} {last}")));
    c.insert("nameid".into(), json!(person.uid));
    if let Some(acc) = account {
        c.insert("outseta:accountUid".into(), json!(acc.uid));
        if let Some(ci) = acc.str("ClientIdentifier") {
            c.insert("outseta:accountClientIdentifier".into(), json!(ci));
        }
        let primary = membership.is_some_and(|m| m.value("IsPrimary") == &Value::Bool(true));
        c.insert(
            "outseta:isPrimary".into(),
            json!(if primary { "1" } else { "0" }),
        );
        if let Some(sub) = acc
            .one("CurrentSubscription")
            .and_then(|s| store.get_kind(Kind::Subscription, s))
        {
            c.insert("outseta:subscriptionUid".into(), json!(sub.uid));
            if let Some(plan) = sub.one("Plan") {
                c.insert("outseta:planUid".into(), json!(plan));
            }
        }
    }
    c.insert("amr".into(), json!(["password"]));
    c.insert("outseta:iss".into(), json!(host));
    c.insert("aud".into(), json!(host));
    c
}

/// Signs a token for `person`.
pub fn mint(
    store: &Store,
    signer: &Signer,
    person: &Entity,
    host: &str,
) -> Result<String, GrantError> {
    signer
        .sign(&claims(store, person, host, now_secs()))
        .map_err(|_| GrantError::Sign)
}

/// The `POST /tokens` grant. With `impersonate` (a valid API key was presented) the password
/// is not checked, exactly as Outseta does.
pub fn grant(
    store: &Store,
    signer: &Signer,
    host: &str,
    req: &TokenRequest,
    impersonate: bool,
) -> Result<Value, GrantError> {
    if req
        .grant_type
        .as_deref()
        .is_some_and(|g| !g.eq_ignore_ascii_case("password"))
    {
        return Err(GrantError::UnsupportedGrantType);
    }
    let username = req.username.as_deref().unwrap_or("");
    let person = store
        .person_by_email(username)
        .ok_or(GrantError::InvalidGrant)?;
    if !impersonate {
        let password = req.password.as_deref().unwrap_or("");
        if password.is_empty() || !store.password_matches(&person.uid, password) {
            return Err(GrantError::InvalidGrant);
        }
    }
    let token = mint(store, signer, person, host)?;
    Ok(json!({
        "access_token": token,
        "refresh_token": uuid::Uuid::new_v4().simple().to_string(),
        "token_type": "Bearer",
        "expires_in": LIFETIME_SECS,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;

    #[test]
    fn claims_match_outseta() {
        let s = seed::store();
        let bob = s.person_by_email("bob@example.com").unwrap();
        let c = claims(&s, bob, "127.0.0.1:9", 1000);
        assert_eq!(c["sub"], json!(seed::person_uid("bob")));
        assert_eq!(c["nameid"], c["sub"]);
        assert_eq!(c["email"], "bob@example.com");
        assert_eq!(c["name"], "Bob Brown");
        assert_eq!(c["outseta:accountUid"], json!(seed::account_uid("acme")));
        assert_eq!(c["outseta:isPrimary"], "0");
        assert!(c["outseta:planUid"].is_string());
        assert!(c["outseta:subscriptionUid"].is_string());
        assert_eq!(c["iss"], "http://127.0.0.1:9");
        assert_eq!(c["aud"], "127.0.0.1:9");
        assert_eq!(c["nbf"], 1000);
        assert_eq!(c["exp"], json!(1000 + LIFETIME_SECS));
        assert!(c.get("outseta:accountClientIdentifier").is_none());
        let alice = s.person_by_email("alice@example.com").unwrap();
        assert_eq!(claims(&s, alice, "h", 0)["outseta:isPrimary"], "1");
    }

    #[test]
    fn bodies_parse_as_json_or_form() {
        let j = TokenRequest::parse(
            Some("application/json"),
            br#"{"Username":"a@b.c","password":"pw","grant_type":"password","client_id":"x"}"#,
        );
        assert_eq!(j.username.as_deref(), Some("a@b.c"));
        assert_eq!(j.password.as_deref(), Some("pw"));
        let f = TokenRequest::parse(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"username=a%40b.c&password=p+w",
        );
        assert_eq!(f.username.as_deref(), Some("a@b.c"));
        assert_eq!(f.password.as_deref(), Some("p w"));
        let none = TokenRequest::parse(None, b"username=x");
        assert_eq!(none.username.as_deref(), Some("x"));
    }

    #[test]
    fn grant_checks_passwords_unless_impersonating() {
        let s = seed::store();
        let k = Signer::generate().unwrap();
        let req = |pw: Option<&str>| TokenRequest {
            username: Some("carol@example.com".into()),
            password: pw.map(Into::into),
            grant_type: None,
        };
        assert!(grant(&s, &k, "h", &req(Some(seed::PASSWORD)), false).is_ok());
        assert_eq!(
            grant(&s, &k, "h", &req(Some("bad")), false),
            Err(GrantError::InvalidGrant)
        );
        assert_eq!(
            grant(&s, &k, "h", &req(None), false),
            Err(GrantError::InvalidGrant)
        );
        let r = grant(&s, &k, "h", &req(None), true).unwrap();
        assert_eq!(r["token_type"], "Bearer");
        assert_eq!(r["expires_in"], json!(LIFETIME_SECS));
        let unknown = TokenRequest {
            username: Some("nobody@example.com".into()),
            ..TokenRequest::default()
        };
        assert_eq!(
            grant(&s, &k, "h", &unknown, true),
            Err(GrantError::InvalidGrant)
        );
    }
}
