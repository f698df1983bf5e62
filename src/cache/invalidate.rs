//! What a successful write drops (docs/behaviour.md, "Response cache"): its own path, its parent collection (one segment
//! shorter), with any query and for any user, plus the rule's `invalidates` templates rendered
//! with the request's path parameters and the caller's claims (a template naming a claim the
//! caller does not have is skipped).

use http::Method;

use crate::rules::Rule;
use crate::rules::expr::Claims;
use crate::rules::template::Params;

/// Whether `method` changes state (RFC 9110 §9.2.1: not GET, HEAD, OPTIONS or TRACE).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The paths a 2xx answer to a write on `path` (matched by `rule` with `params`) invalidates.
pub fn targets(path: &str, params: &Params, claims: Option<&Claims>, rule: &Rule) -> Vec<String> {
    let mut out = Vec::with_capacity(2 + rule.invalidates.len());
    out.push(path.to_string());
    if let Some(parent) = parent(path) {
        out.push(parent.to_string());
    }
    for t in &rule.invalidates {
        let claim = |name: &str| claims.and_then(|c| c.string(name));
        if let Some(p) = t.render(params, &claim)
            && !out.iter().any(|o| o.eq_ignore_ascii_case(&p))
        {
            out.push(p);
        }
    }
    out
}

/// The path one segment shorter; `None` for `/` and for a single segment (whose parent, `/`,
/// is not a collection).
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn parents() {
        assert_eq!(parent("/api/v1/crm/people/u1"), Some("/api/v1/crm/people"));
        assert_eq!(parent("/api"), None);
        assert_eq!(parent("/"), None);
    }

    #[test]
    fn targets_include_rendered_templates() {
        let cfg = Config::from_toml(
            r#"
[outseta]
domain = "x.outseta.com"
[[rule]]
name = "update person"
methods = ["PUT"]
path = "/api/v1/crm/people/{uid}"
invalidates = ["/api/v1/crm/accounts/{uid}/people", "/api/v1/crm/people/{uid}"]
"#,
            "t",
        )
        .unwrap();
        let rule = cfg.rules.rule(0).unwrap();
        let params: Params = vec![("uid".into(), "u1".to_string())];
        assert_eq!(
            targets("/api/v1/crm/people/u1", &params, None, rule),
            vec![
                "/api/v1/crm/people/u1",
                "/api/v1/crm/people",
                "/api/v1/crm/accounts/u1/people"
            ]
        );
        let profile = Config::from_toml(
            r#"
[outseta]
domain = "x.outseta.com"
[[rule]]
name = "update profile"
methods = ["PUT"]
path = "/api/v1/profile"
credential = "user"
invalidates = ["/api/v1/crm/people/{claims.sub}"]
"#,
            "t",
        )
        .unwrap();
        let claims = Claims::from_json(&serde_json::json!({"sub": "P1"}));
        let rule = profile.rules.rule(0).unwrap();
        assert_eq!(
            targets("/api/v1/profile", &Params::new(), Some(&claims), rule),
            vec!["/api/v1/profile", "/api/v1", "/api/v1/crm/people/P1"]
        );
        // Without the claim, the template is skipped.
        assert_eq!(
            targets("/api/v1/profile", &Params::new(), None, rule),
            vec!["/api/v1/profile", "/api/v1"]
        );
        assert!(is_unsafe(&Method::DELETE));
        assert!(!is_unsafe(&Method::HEAD));
    }
}
