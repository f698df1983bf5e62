//! Path templates: `/api/v1/crm/people/{uid}`, `/api/v1/tokens/{*rest}`.
//!
//! `{name}` captures exactly one segment; `{*name}` (last only) captures the remaining zero or
//! more segments joined by `/`. Templates that are only rendered (`invalidates`) may also name
//! a string claim, `{claims.sub}` or `{claims.outseta:accountUid}`. Literal segments compare ASCII-case-insensitively, because
//! Outseta's routes do: a rule for `/api/v1/crm/people/{uid}` must also cover
//! `/API/V1/CRM/People/x`, or a client could reach a route under another spelling.

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(String),
    Param(Arc<str>),
    Rest(Arc<str>),
    /// A claim's value (rendered templates only; never matched).
    Claim(Arc<str>),
}

/// Captured parameters, in template order.
pub type Params = Vec<(Arc<str>, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segs: Vec<Seg>,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A claim name as JWT payloads use them: `sub`, `outseta:accountUid`.
fn valid_claim(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.'))
}

impl PathTemplate {
    pub fn parse(source: &str) -> Result<Self, String> {
        Self::parse_inner(source, false)
    }

    /// A template that is only rendered (never matched): it may also use `{claims.NAME}`.
    pub fn parse_rendered(source: &str) -> Result<Self, String> {
        Self::parse_inner(source, true)
    }

    fn parse_inner(source: &str, claims: bool) -> Result<Self, String> {
        if !source.starts_with('/') {
            return Err(format!("path template {source:?} must start with '/'"));
        }
        let mut segs = Vec::new();
        if source != "/" {
            let parts: Vec<&str> = source[1..].split('/').collect();
            let last = parts.len() - 1;
            for (i, part) in parts.iter().enumerate() {
                if part.is_empty() {
                    return Err(format!("path template {source:?} has an empty segment"));
                }
                if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if let Some(claim) = inner.strip_prefix("claims.") {
                        if !claims || !valid_claim(claim) {
                            return Err(format!(
                                "path template {source:?}: {{claims.{claim}}} is only allowed in `invalidates`, with a claim name"
                            ));
                        }
                        segs.push(Seg::Claim(claim.into()));
                        continue;
                    }
                    let (rest, name) = match inner.strip_prefix('*') {
                        Some(n) => (true, n),
                        None => (false, inner),
                    };
                    if !valid_name(name) {
                        return Err(format!(
                            "path template {source:?}: invalid parameter name {name:?}"
                        ));
                    }
                    if segs
                        .iter()
                        .any(|s| matches!(s, Seg::Param(n) | Seg::Rest(n) if &**n == name))
                    {
                        return Err(format!(
                            "path template {source:?}: parameter {name:?} appears twice"
                        ));
                    }
                    if rest && i != last {
                        return Err(format!(
                            "path template {source:?}: {{*{name}}} must be the last segment"
                        ));
                    }
                    segs.push(if rest {
                        Seg::Rest(name.into())
                    } else {
                        Seg::Param(name.into())
                    });
                } else {
                    if part.contains(['{', '}']) {
                        return Err(format!(
                            "path template {source:?}: a parameter must fill a whole segment, as in {{uid}}"
                        ));
                    }
                    if *part == "."
                        || *part == ".."
                        || !part
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && b != b'%' && b != b'\\')
                    {
                        return Err(format!(
                            "path template {source:?}: literal segment {part:?} is not a plain path segment"
                        ));
                    }
                    segs.push(Seg::Literal(part.to_string()));
                }
            }
        }
        Ok(Self {
            source: source.to_string(),
            segs,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Names of the parameters, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().filter_map(|s| match s {
            Seg::Param(n) | Seg::Rest(n) => Some(&**n),
            Seg::Literal(_) | Seg::Claim(_) => None,
        })
    }

    /// Matches canonical segments; returns the captured parameters.
    pub fn matches<'a>(&self, segments: impl ExactSizeIterator<Item = &'a str>) -> Option<Params> {
        let mut params = Params::new();
        let mut it = segments;
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                Seg::Rest(name) => {
                    let rest: Vec<&str> = it.by_ref().collect();
                    params.push((name.clone(), rest.join("/")));
                    return Some(params);
                }
                _ if it.len() == 0 => return None,
                Seg::Literal(lit) => {
                    let s = it.next()?;
                    if !lit.eq_ignore_ascii_case(s) {
                        return None;
                    }
                }
                Seg::Param(name) => {
                    let s = it.next()?;
                    params.push((name.clone(), s.to_string()));
                }
                Seg::Claim(_) => return None,
            }
            let _ = i;
        }
        if it.len() == 0 { Some(params) } else { None }
    }

    /// Whether some path starting with `prefix` (segments, the last one also as a string
    /// prefix, e.g. `tokens` covers `tokens2`) could match this template.
    pub fn may_match_under(&self, prefix: &[&str]) -> bool {
        for (i, want) in prefix.iter().enumerate() {
            let is_last = i + 1 == prefix.len();
            match self.segs.get(i) {
                None => return false,
                Some(Seg::Rest(_)) => return true,
                Some(Seg::Param(_)) => {}
                Some(Seg::Claim(_)) => return false,
                Some(Seg::Literal(lit)) => {
                    let lit = lit.to_ascii_lowercase();
                    let ok = if is_last {
                        lit.starts_with(want)
                    } else {
                        lit == *want
                    };
                    if !ok {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Renders the template with `params` and `claim` (used by `invalidates`). `None` if a
    /// parameter or claim is missing, or a claim's value is not one plain path segment
    /// (unreserved characters only, not `.` or `..`).
    pub fn render<'a>(
        &'a self,
        params: &'a Params,
        claim: &dyn Fn(&str) -> Option<&'a str>,
    ) -> Option<String> {
        let mut out = String::new();
        for seg in &self.segs {
            let piece = match seg {
                Seg::Literal(l) => l.as_str(),
                Seg::Param(n) | Seg::Rest(n) => params
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.as_str())?,
                Seg::Claim(n) => claim(n).filter(|v| {
                    !v.is_empty()
                        && *v != "."
                        && *v != ".."
                        && v.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
                        })
                })?,
            };
            if !piece.is_empty() {
                out.push('/');
                out.push_str(piece);
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<&str> {
        p.trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn m(t: &str, p: &str) -> Option<Params> {
        PathTemplate::parse(t).unwrap().matches(segs(p).into_iter())
    }

    #[test]
    fn matches_params_and_literals_case_insensitively() {
        let p = m("/api/v1/crm/people/{uid}", "/API/v1/Crm/people/abc").unwrap();
        assert_eq!(p, vec![("uid".into(), "abc".to_string())]);
        assert!(m("/api/v1/crm/people/{uid}", "/api/v1/crm/people").is_none());
        assert!(m("/api/v1/crm/people/{uid}", "/api/v1/crm/people/a/b").is_none());
    }

    #[test]
    fn rest_matches_zero_or_more() {
        let t = "/api/v1/tokens/{*rest}";
        assert_eq!(m(t, "/api/v1/tokens").unwrap()[0].1, "");
        assert_eq!(
            m(t, "/api/v1/tokens/two-factor/resend").unwrap()[0].1,
            "two-factor/resend"
        );
        assert!(m(t, "/api/v1/token").is_none());
    }

    #[test]
    fn rejects_bad_templates() {
        for t in [
            "api", "/a//b", "/{*r}/x", "/{a}/{a}", "/x{a}", "/{1a}", "/a/../b", "/a%2Fb",
        ] {
            assert!(PathTemplate::parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn tokens_prefix_detection() {
        let under = ["api", "v1", "tokens"];
        let yes = [
            "/api/v1/tokens",
            "/api/v1/{x}",
            "/api/{v}/{e}/{*r}",
            "/{*all}",
            "/API/V1/Tokens/two-factor",
            "/api/v1/tokensx",
        ];
        let no = [
            "/api/v1/crm/people/{uid}",
            "/api/v1",
            "/api/v2/tokens",
            "/api/v1/profile",
        ];
        for t in yes {
            assert!(
                PathTemplate::parse(t).unwrap().may_match_under(&under),
                "{t}"
            );
        }
        for t in no {
            assert!(
                !PathTemplate::parse(t).unwrap().may_match_under(&under),
                "{t}"
            );
        }
    }

    #[test]
    fn renders_with_params() {
        let t = PathTemplate::parse("/api/v1/crm/people/{uid}").unwrap();
        let p = vec![("uid".into(), "abc".to_string())];
        let none = |_: &str| None;
        assert_eq!(
            t.render(&p, &none).as_deref(),
            Some("/api/v1/crm/people/abc")
        );
        assert_eq!(t.render(&vec![], &none), None);
    }

    #[test]
    fn rendered_templates_may_name_claims_and_render_only_plain_segments() {
        assert!(PathTemplate::parse("/api/v1/crm/people/{claims.sub}").is_err());
        let t = PathTemplate::parse_rendered("/api/v1/crm/accounts/{claims.outseta:accountUid}")
            .unwrap();
        assert_eq!(t.param_names().count(), 0);
        assert!(
            t.matches(["api", "v1", "crm", "accounts", "A1"].into_iter())
                .is_none()
        );
        let claims = |v: &'static str| move |n: &str| (n == "outseta:accountUid").then_some(v);
        let p = Params::new();
        assert_eq!(
            t.render(&p, &claims("A1")).as_deref(),
            Some("/api/v1/crm/accounts/A1")
        );
        for bad in ["", "..", "a/b", "a%2Fb", "a b"] {
            assert_eq!(t.render(&p, &claims(bad)), None, "{bad:?}");
        }
        assert_eq!(t.render(&p, &|_: &str| None), None);
        assert!(PathTemplate::parse_rendered("/x/{claims.}").is_err());
        assert!(PathTemplate::parse_rendered("/x/{claims.a/b}").is_err());
    }
}
