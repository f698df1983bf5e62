//! `explain`: the decision for one request, offline, with the same rule code `serve` runs.
//!
//! Never prints the API key or secret: the credential is named, not shown.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::Method;

use crate::config::Config;
use crate::rules::canon::canonicalize;
use crate::rules::expr::{Input, claims_value};
use crate::rules::query::Query;
use crate::rules::{AuthMode, CacheMode, Credential};

/// Where the claims come from.
pub enum ClaimsFrom<'a> {
    /// A JWT, decoded without verifying its signature.
    Token(&'a str),
    /// A JSON object.
    Json(&'a str),
}

/// Decodes a JWT payload without verification.
fn decode_unverified(token: &str) -> Result<serde_json::Value, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("the token is not a JWT (expected three dot-separated parts)")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the token payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "the token payload is not JSON".to_string())
}

/// Builds the report. `Err` is a usage problem (bad method, bad claims).
pub fn explain(
    config: &Config,
    method: &str,
    path_and_query: &str,
    claims: ClaimsFrom<'_>,
) -> Result<String, String> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {method:?}"))?;
    let mut out = String::new();
    let claims_json = match claims {
        ClaimsFrom::Token(t) => {
            let c = decode_unverified(t)?;
            let _ = writeln!(
                out,
                "token:       decoded WITHOUT verifying its signature (explain never checks signatures)"
            );
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if let Some(exp) = c.get("exp").and_then(|e| e.as_u64())
                && exp < now
            {
                let _ = writeln!(
                    out,
                    "             note: this token expired {}s ago; serve would answer 401",
                    now - exp
                );
            }
            for (claim, want) in [
                ("iss", &config.outseta.issuer),
                ("aud", &config.outseta.audience),
            ] {
                if let Some(v) = c.get(claim).and_then(|v| v.as_str())
                    && v != want
                {
                    let _ = writeln!(
                        out,
                        "             note: {claim} is {v:?}, the gateway accepts {want:?}; serve would answer 401"
                    );
                }
            }
            c
        }
        ClaimsFrom::Json(j) => {
            serde_json::from_str(j).map_err(|e| format!("--claims is not JSON: {e}"))?
        }
    };
    if !claims_json.is_object() {
        return Err("the claims must be a JSON object".into());
    }
    let (raw_path, raw_query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let _ = writeln!(out, "request:     {method} {path_and_query}");
    let path = match canonicalize(raw_path) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(
                out,
                "decision:    deny — 400 bad_request: {e} (refused before any rule is tried)"
            );
            return Ok(out);
        }
    };
    let rules = &config.rules;
    let Some((index, params)) = rules.find(&method, &path) else {
        let api = path.as_str().to_ascii_lowercase().starts_with("/api/v1/");
        let _ = writeln!(
            out,
            "decision:    deny — {} (no rule matches {method} {}; default deny)",
            if api {
                "403 forbidden"
            } else {
                "404 not_found"
            },
            path.as_str()
        );
        return Ok(out);
    };
    let Some(rule) = rules.rule(index) else {
        return Err("internal: rule index".into());
    };
    let _ = writeln!(
        out,
        "rule:        #{} {:?} ({} {})",
        index + 1,
        &*rule.name,
        join_methods(&rule.methods),
        rule.template.as_str()
    );
    if !params.is_empty() {
        let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "path params: {}", p.join(", "));
    }
    let claims = match rule.auth {
        AuthMode::None => {
            let _ = writeln!(
                out,
                "auth:        none (any token is ignored and stripped; claims = {{}})"
            );
            claims_value(&serde_json::json!({}))
        }
        AuthMode::Optional => {
            let _ = writeln!(out, "auth:        optional (verified if sent)");
            claims_value(&claims_json)
        }
        AuthMode::Required => {
            let _ = writeln!(out, "auth:        required");
            claims_value(&claims_json)
        }
    };
    if let Some(w) = &rule.when {
        let _ = writeln!(out, "when:        {}", w.source());
    }
    let query = Query::parse(raw_query);
    let input = Input {
        claims: &claims,
        params: &params,
        query: &query,
        method: method.as_str(),
    };
    let forwarded = match rule.authorize(rules.root(), &input) {
        Ok(q) => q,
        Err(d) => {
            let _ = writeln!(out, "decision:    deny — 403 forbidden: {d}");
            return Ok(out);
        }
    };
    let _ = writeln!(out, "decision:    allow");
    let pq = match forwarded.serialize() {
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_string(),
    };
    let _ = writeln!(
        out,
        "upstream:    {method} {}{pq}",
        config.outseta.upstream.to_string().trim_end_matches('/')
    );
    let cred = match rule.credential {
        Credential::ApiKey => {
            "api_key (Authorization: Outseta <key>:<secret>, from the environment; never shown)"
        }
        Credential::User => "user (the caller's own bearer token is forwarded)",
        Credential::None => "none (no Authorization header upstream)",
    };
    let _ = writeln!(out, "credential:  {cred}");
    for (k, e) in &rule.query_set {
        let _ = writeln!(
            out,
            "query_set:   {k} = {} (forced; client values of {k:?} in any case removed)",
            e.source()
        );
    }
    if let Some(a) = &rule.query_allow {
        let _ = writeln!(out, "query_allow: {}", a.join(", "));
    }
    if rule.has_body_rules() {
        if let Some(a) = &rule.body_allow {
            let _ = writeln!(
                out,
                "body_allow:  {} (other top-level JSON keys → 403)",
                a.join(", ")
            );
        }
        let empty = serde_json::json!({});
        let forced = rule.rewrite_body(rules.root(), &input, empty.to_string().as_bytes());
        match forced {
            Ok(b) => {
                if !rule.body_set.is_empty() {
                    let _ = writeln!(
                        out,
                        "body_set:    {} (merged into the JSON body)",
                        String::from_utf8_lossy(&b)
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "body_set:    cannot be computed for these claims: {e:?}"
                );
            }
        }
        let _ = writeln!(out, "             a non-JSON or non-object body → 400");
    }
    if let Some(r) = &rule.response_when {
        let _ = writeln!(
            out,
            "response_when: {} (checked on every 2xx response, cache hits included; false → 403)",
            r.source()
        );
    }
    let cache = match rule.cache {
        CacheMode::Off => "off".to_string(),
        CacheMode::Default => format!("default ({})", humantime::format_duration(config.cache.ttl)),
        CacheMode::Ttl(t) => humantime::format_duration(t).to_string(),
    };
    let _ = writeln!(out, "cache:       {cache}");
    Ok(out)
}

fn join_methods(m: &[Method]) -> String {
    m.iter().map(Method::as_str).collect::<Vec<_>>().join(",")
}
