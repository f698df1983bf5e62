//! `outseta-gateway test`: files of expected decisions, run against the rules offline.
//!
//! A case file is TOML with one `[[case]]` table per case:
//!
//! | key | meaning |
//! | --- | --- |
//! | `name` | required, unique across the files run together |
//! | `request` | required, `"METHOD /path?query"` as the client sends it |
//! | `expect` | required: `"allow"`, `"deny"` (any refusal) or a problem code: `bad_request`, `missing_token`, `forbidden`, `not_found` |
//! | `claims` | the token's payload as a table; absent or `{}` = no token |
//! | `headers` | client request headers, name → value |
//! | `body` | the request body, a string |
//! | `rule` | the name of the rule that must decide |
//! | `upstream` | the exact forwarded `"METHOD /path?query"` |
//! | `upstream_body` | the forwarded body, compared as JSON values |
//! | `upstream_headers` | name → value pairs that must be among the forwarded headers (`authorization` shows a placeholder, never a credential) |
//! | `upstream_headers_absent` | names that must not be forwarded |
//!
//! # Guarantees
//! - Every case is judged by [`explain::decide`], the decision `explain` prints, so a passing
//!   case says what `serve` does with that request (minus what only the live gateway knows:
//!   signatures, expiry, `response_when`, limits).
//! - A file is checked whole before anything runs: unknown keys (named), a missing or
//!   malformed value, an unknown `expect` value, a `rule` naming no configured rule, or an
//!   `upstream*` expectation on a case that does not expect `allow` are all reported, and no
//!   case runs.
//! - Problem codes are those of [`GatewayError`]; none is spelled out here.
//! - The report has one line per case, `ok <name>` or `FAILED <name>: expected …, got …`,
//!   then `N passed, M failed`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use serde::Deserialize;

use crate::auth::AuthError;
use crate::config::Config;
use crate::error::GatewayError;
use crate::explain::{self, Decision, Probe};
use crate::rules::Denial;

/// What a case expects of the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Allow,
    /// Any refusal.
    Deny,
    /// A refusal with this problem code.
    Code(&'static str),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allow => f.write_str("allow"),
            Self::Deny => f.write_str("deny"),
            Self::Code(c) => f.write_str(c),
        }
    }
}

/// The problem codes an offline decision can end in, from [`GatewayError`].
pub fn refusal_codes() -> Vec<&'static str> {
    let errors: [GatewayError; 4] = [
        GatewayError::BadRequest(String::new()),
        AuthError::Missing.into(),
        Denial::NoRule.into(),
        GatewayError::NotFound,
    ];
    errors.iter().map(|e| e.parts().1.as_str()).collect()
}

/// One validated case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub probe: Probe,
    pub expect: Expect,
    pub rule: Option<String>,
    pub upstream: Option<String>,
    pub upstream_body: Option<serde_json::Value>,
    pub upstream_headers: Vec<(HeaderName, String)>,
    pub upstream_headers_absent: Vec<HeaderName>,
}

/// The raw `[[case]]` table; every field optional so validation can name what is missing.
#[derive(Debug, Default, Deserialize)]
struct CaseEntry {
    name: Option<String>,
    claims: Option<toml::Table>,
    request: Option<String>,
    expect: Option<String>,
    rule: Option<String>,
    upstream: Option<String>,
    body: Option<String>,
    upstream_body: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    upstream_headers: Option<BTreeMap<String, String>>,
    upstream_headers_absent: Option<Vec<String>>,
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Parses one case file. `source` labels problems; `config` is needed to check `rule`.
/// Returns the cases, or every problem found.
pub fn parse_cases(text: &str, source: &str, config: &Config) -> Result<Vec<Case>, Vec<String>> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        vec![format!(
            "{source}: TOML syntax error: {}",
            e.to_string().trim_end()
        )]
    })?;
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    for (key, value) in doc {
        if key != "case" {
            problems.push(format!(
                "{source}: unknown key `{key}` at top level (expected `[[case]]` tables)"
            ));
            continue;
        }
        let toml::Value::Array(entries) = value else {
            problems.push(format!(
                "{source}: `case` must be an array of tables (`[[case]]`)"
            ));
            continue;
        };
        for (i, entry) in entries.into_iter().enumerate() {
            let label_n = format!("{source}: case #{}", i + 1);
            if !entry.is_table() {
                problems.push(format!("{label_n}: must be a table"));
                continue;
            }
            let mut unknown = Vec::new();
            let parsed: Result<CaseEntry, _> =
                serde_ignored::deserialize(entry, |path| unknown.push(path.to_string()));
            let label = match &parsed {
                Ok(CaseEntry { name: Some(n), .. }) => format!("{label_n} ({n:?})"),
                _ => label_n,
            };
            for key in unknown {
                problems.push(format!("{label}: unknown key `{key}`"));
            }
            match parsed {
                Ok(e) => {
                    if let Some(c) = validate(e, &label, config, &mut problems) {
                        cases.push(c);
                    }
                }
                Err(e) => problems.push(format!("{label}: {}", e.to_string().trim_end())),
            }
        }
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(problems)
    }
}

fn validate(
    e: CaseEntry,
    label: &str,
    config: &Config,
    problems: &mut Vec<String>,
) -> Option<Case> {
    let before = problems.len();
    let mut p = |m: String| problems.push(format!("{label}: {m}"));
    let name = match e.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            p("missing `name`".into());
            String::new()
        }
    };
    let (method, target) = match e.request.as_deref() {
        None => {
            p("missing `request` (\"METHOD /path?query\")".into());
            (Method::GET, String::new())
        }
        Some(r) => {
            let parts: Vec<&str> = r.split_whitespace().collect();
            match parts.as_slice() {
                [m, t] if t.starts_with('/') => match Method::from_bytes(m.as_bytes()) {
                    Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => {
                        (method, (*t).to_string())
                    }
                    _ => {
                        p(format!("`request`: {m:?} is not an upper-case HTTP method"));
                        (Method::GET, String::new())
                    }
                },
                _ => {
                    p(format!("`request`: {r:?} is not \"METHOD /path?query\""));
                    (Method::GET, String::new())
                }
            }
        }
    };
    let codes = refusal_codes();
    let expect = match e.expect.as_deref() {
        None => {
            p("missing `expect`".into());
            Expect::Deny
        }
        Some("allow") => Expect::Allow,
        Some("deny") => Expect::Deny,
        Some(other) => match codes.iter().find(|c| **c == other) {
            Some(c) => Expect::Code(c),
            None => {
                p(format!(
                    "`expect`: {other:?} is not \"allow\", \"deny\" or one of {}",
                    codes.join(", ")
                ));
                Expect::Deny
            }
        },
    };
    if let Some(r) = &e.rule
        && !config.rules.rules().iter().any(|rule| &*rule.name == r)
    {
        p(format!("`rule`: no rule is named {r:?} in the config"));
    }
    let upstream_expected = e.upstream.is_some()
        || e.upstream_body.is_some()
        || e.upstream_headers.is_some()
        || e.upstream_headers_absent.is_some();
    if upstream_expected && expect != Expect::Allow {
        p("`upstream`, `upstream_body` and `upstream_headers*` describe a forwarded request: they need expect = \"allow\"".into());
    }
    let upstream_body = match e.upstream_body.as_deref() {
        None => None,
        Some(b) => match serde_json::from_str(b) {
            Ok(v) => Some(v),
            Err(err) => {
                p(format!("`upstream_body` is not JSON: {err}"));
                None
            }
        },
    };
    let mut headers = HeaderMap::new();
    for (k, v) in e.headers.iter().flatten() {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => p(format!("`headers`: {k:?} = {v:?} is not a valid header")),
        }
    }
    let mut header_name = |k: &str, key: &str| match HeaderName::from_bytes(k.as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            p(format!("`{key}`: {k:?} is not a valid header name"));
            None
        }
    };
    let upstream_headers = e
        .upstream_headers
        .iter()
        .flatten()
        .filter_map(|(k, v)| header_name(k, "upstream_headers").map(|n| (n, v.clone())))
        .collect();
    let upstream_headers_absent = e
        .upstream_headers_absent
        .iter()
        .flatten()
        .filter_map(|k| header_name(k, "upstream_headers_absent"))
        .collect();
    let claims = e.claims.as_ref().map_or_else(
        || serde_json::json!({}),
        |t| toml_to_json(&toml::Value::Table(t.clone())),
    );
    if problems.len() > before {
        return None;
    }
    Some(Case {
        name,
        probe: Probe {
            method,
            path_and_query: target,
            claims,
            headers,
            body: e.body.map(String::into_bytes),
        },
        expect,
        rule: e.rule,
        upstream: e.upstream,
        upstream_body,
        upstream_headers,
        upstream_headers_absent,
    })
}

/// How a decision reads in a `got …` message.
fn outcome(d: &Decision) -> String {
    if d.allowed() {
        return "allow".to_string();
    }
    format!(
        "{} ({}: {})",
        d.code.unwrap_or("deny"),
        d.status.unwrap_or(0),
        d.detail.as_deref().unwrap_or("")
    )
}

/// Compares a decision with the case's expectations: `Err` lists every mismatch as
/// `expected …, got …`, joined with `; `.
pub fn check(case: &Case, d: &Decision) -> Result<(), String> {
    let mut misses = Vec::new();
    let verdict_ok = match &case.expect {
        Expect::Allow => d.allowed(),
        Expect::Deny => !d.allowed(),
        Expect::Code(c) => d.code == Some(*c),
    };
    if !verdict_ok {
        misses.push(format!("expected {}, got {}", case.expect, outcome(d)));
    }
    if let Some(want) = &case.rule {
        let got = d.rule.as_ref().map(|r| r.name.as_str());
        if got != Some(want.as_str()) {
            misses.push(format!(
                "expected rule {want:?}, got {}",
                got.map_or_else(|| "no rule".to_string(), |g| format!("rule {g:?}"))
            ));
        }
    }
    let up = d.upstream.as_ref();
    if let Some(want) = &case.upstream {
        let got = up.map(|u| format!("{} {}", u.method, u.target));
        if got.as_deref() != Some(want.as_str()) {
            misses.push(format!(
                "expected upstream {want:?}, got {}",
                got.map_or_else(|| "nothing forwarded".to_string(), |g| format!("{g:?}"))
            ));
        }
    }
    if let Some(want) = &case.upstream_body {
        let got = up.and_then(|u| u.body.as_deref());
        let same = got
            .and_then(|g| serde_json::from_str::<serde_json::Value>(g).ok())
            .is_some_and(|g| &g == want);
        if !same {
            misses.push(format!(
                "expected upstream_body {want}, got {}",
                got.unwrap_or("no body")
            ));
        }
    }
    for (name, want) in &case.upstream_headers {
        let got = up.and_then(|u| u.headers.get(name.as_str()));
        if got != Some(want) {
            misses.push(format!(
                "expected upstream header {name}: {want}, got {}",
                got.map_or_else(|| format!("no {name}"), |g| format!("{name}: {g}"))
            ));
        }
    }
    for name in &case.upstream_headers_absent {
        if let Some(got) = up.and_then(|u| u.headers.get(name.as_str())) {
            misses.push(format!(
                "expected no upstream header {name}, got {name}: {got}"
            ));
        }
    }
    if misses.is_empty() {
        Ok(())
    } else {
        Err(misses.join("; "))
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `ok <name>` or `FAILED <name>: …`, in case order.
    pub lines: Vec<String>,
    pub passed: usize,
    pub failed: usize,
}

impl Report {
    /// The lines, then `N passed, M failed`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(&format!("{} passed, {} failed\n", self.passed, self.failed));
        out
    }
}

/// Runs validated cases.
pub fn run(config: &Config, cases: &[Case]) -> Report {
    let mut report = Report::default();
    for case in cases {
        let decision = explain::decide(config, &case.probe);
        match check(case, &decision) {
            Ok(()) => {
                report.passed += 1;
                report.lines.push(format!("ok {}", case.name));
            }
            Err(why) => {
                report.failed += 1;
                report.lines.push(format!("FAILED {}: {why}", case.name));
            }
        }
    }
    report
}

/// Reads, validates and runs every file; `Err` holds every problem of every file (then no
/// case runs). Case names must be unique across the files.
pub fn run_files<P: AsRef<Path>>(config: &Config, paths: &[P]) -> Result<Report, Vec<String>> {
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let source = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => match parse_cases(&text, &source, config) {
                Ok(c) => cases.extend(c),
                Err(p) => problems.extend(p),
            },
            Err(e) => problems.push(format!("{source}: cannot read the file: {e}")),
        }
    }
    let mut seen = HashSet::new();
    for c in &cases {
        if !seen.insert(c.name.as_str()) {
            problems.push(format!("duplicate case name {:?}", c.name));
        }
    }
    if problems.is_empty() {
        Ok(run(config, &cases))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests;
