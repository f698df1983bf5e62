//! Cache keys (docs/behaviour.md, "Response cache"): the upstream request as forwarded — the canonical path and the query
//! after the rule's rewriting, with its parameters sorted — plus who the request is made as
//! when that changes the answer.
//!
//! # Form
//! `<path>[?<sorted query>][\0<scope>]`. The scope is empty for `credential = "api_key"`
//! (the common case, so the key of a query-less API-key request is the path itself and a
//! lookup needs no allocation), `none` for `credential = "none"` and `user:<sub>` (or `user`
//! for an anonymous caller) for `credential = "user"`. A NUL cannot occur in a canonical path
//! or an encoded query, so the parts cannot run into each other.
//!
//! Query pairs are sorted by their encoded key, compared ASCII-case-insensitively (Outseta
//! binds keys so), and the sort is stable: the values of a repeated key keep their order,
//! because Outseta reads repeated values in order (`orderBy=Uid+DESC&orderBy=Amount` is not
//! `orderBy=Amount&orderBy=Uid+DESC`). Two queries that differ only in the order of
//! different keys give the same cache key.

use std::borrow::{Borrow, Cow};
use std::sync::Arc;

use crate::rules::Credential;

/// A stored key. Cheap to clone (shared by the store, its path index and the lock table).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    pub fn new(key: &str) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path part (what invalidation and purges compare).
    pub fn path(&self) -> &str {
        path_of(&self.0)
    }
}

impl Borrow<str> for CacheKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The path part of a key: everything before the query or the scope.
pub fn path_of(key: &str) -> &str {
    let end = key.find(['?', '\0']).unwrap_or(key.len());
    &key[..end]
}

/// The key for the upstream request `path` + `query` sent with `credential`, made by the
/// caller whose `sub` is given. Borrowed (no allocation) for an API-key request without a query.
pub fn build<'a>(
    path: &'a str,
    query: Option<&str>,
    credential: Credential,
    sub: Option<&str>,
) -> Cow<'a, str> {
    if query.is_none() && credential == Credential::ApiKey {
        return Cow::Borrowed(path);
    }
    let mut key = String::with_capacity(
        path.len() + query.map_or(0, |q| q.len() + 1) + sub.map_or(0, str::len) + 8,
    );
    key.push_str(path);
    if let Some(q) = query {
        key.push('?');
        push_sorted(&mut key, q);
    }
    match credential {
        Credential::ApiKey => {}
        Credential::None => key.push_str("\0none"),
        Credential::User => {
            key.push_str("\0user");
            if let Some(sub) = sub {
                key.push(':');
                key.push_str(sub);
            }
        }
    }
    Cow::Owned(key)
}

/// Appends the `&`-separated pairs of an encoded query, stably sorted by key (any case).
fn push_sorted(out: &mut String, query: &str) {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_by(|a, b| {
        a.0.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.0.bytes().map(|c| c.to_ascii_lowercase()))
    });
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;
    use crate::proxy::context::{Caller, Plan};

    fn build<'a>(plan: &'a Plan, caller: Option<&Caller>) -> Cow<'a, str> {
        super::build(
            &plan.path,
            plan.query.as_deref(),
            plan.credential,
            caller.and_then(|c| c.principal.sub().map(|s| &**s)),
        )
    }
    use http::Method;

    fn plan(path: &str, query: Option<&str>, credential: Credential) -> Plan {
        Plan {
            method: Method::GET,
            path: path.into(),
            query: query.map(str::to_string),
            credential,
            rule_name: "r".into(),
            shape: crate::upstream::headers::Shape::new(true, false, false),
        }
    }

    fn caller(sub: Option<&str>) -> Caller {
        let principal = Principal {
            claims: crate::rules::expr::claims_value(&serde_json::json!({ "sub": sub })),
            ..Principal::anonymous()
        };
        Caller {
            principal: Arc::new(principal),
            bearer: None,
        }
    }

    #[test]
    fn api_key_without_query_borrows_the_path() {
        let p = plan("/api/v1/crm/people/u1", None, Credential::ApiKey);
        let k = build(&p, None);
        assert!(matches!(k, Cow::Borrowed(_)));
        assert_eq!(k, "/api/v1/crm/people/u1");
    }

    #[test]
    fn query_pairs_are_sorted_by_key_keeping_repeated_values_in_order() {
        let a = plan(
            "/p",
            Some("limit=10&Account.Uid=x&fields=*&fields=Uid"),
            Credential::ApiKey,
        );
        let b = plan(
            "/p",
            Some("fields=*&Account.Uid=x&limit=10&fields=Uid"),
            Credential::ApiKey,
        );
        assert_eq!(build(&a, None), build(&b, None));
        assert_eq!(
            build(&a, None),
            "/p?Account.Uid=x&fields=*&fields=Uid&limit=10"
        );
        // Outseta reads repeated values in order: another order is another request.
        let order = |q: &str| build(&plan("/p", Some(q), Credential::ApiKey), None).into_owned();
        assert_ne!(
            order("orderBy=Uid+DESC&orderBy=Amount"),
            order("orderBy=Amount&orderBy=Uid+DESC")
        );
        // ... also when the repeated key is spelled in two cases (one key to Outseta)
        assert_ne!(
            order("orderBy=Amount&OrderBy=Uid"),
            order("OrderBy=Uid&orderBy=Amount")
        );
        // Different values are different keys.
        let c = plan("/p", Some("limit=11&Account.Uid=x"), Credential::ApiKey);
        assert_ne!(build(&a, None), build(&c, None));
    }

    #[test]
    fn user_credential_keys_carry_the_sub() {
        let p = plan("/api/v1/profile", None, Credential::User);
        let u1 = build(&p, Some(&caller(Some("u1")))).into_owned();
        let u2 = build(&p, Some(&caller(Some("u2")))).into_owned();
        let anon = build(&p, Some(&caller(None))).into_owned();
        assert_ne!(u1, u2);
        assert_ne!(u1, anon);
        assert_eq!(u1, "/api/v1/profile\0user:u1");
        assert_eq!(path_of(&u1), "/api/v1/profile");
        // api_key and none never share an entry for the same path.
        let none = build(&plan("/p", None, Credential::None), None).into_owned();
        assert_ne!(none, build(&plan("/p", None, Credential::ApiKey), None));
    }

    #[test]
    fn path_of_stops_at_query_or_scope() {
        assert_eq!(path_of("/a/b?x=1\0user:u"), "/a/b");
        assert_eq!(path_of("/a/b\0none"), "/a/b");
        assert_eq!(CacheKey::new("/a?b=1").path(), "/a");
    }
}
