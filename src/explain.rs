//! `explain`: the decision for one request, offline, with the same code `serve` runs.
//!
//! # Guarantees
//! - [`decide`] is pure (no IO, no clock) and takes the steps `serve` takes, through the same
//!   functions: [`canonicalize`] (400 before any rule), [`RuleSet::find`] and
//!   [`crate::proxy::route::no_rule`] (403 under `/api/v1`, 404 elsewhere), the rule's `auth`
//!   mode (401 `missing_token` when a required token is absent), [`Rule::authorize`] (`when`,
//!   `query_set`, `query_allow`), [`Rule::rewrite_body`] (400 / 403), and
//!   [`crate::proxy::forward::upstream_uri`] for the forwarded target.
//! - Every refusal's status, code and detail come from [`GatewayError`]: a code is defined
//!   there and nowhere else.
//! - A [`Decision`] never holds the API key or secret, nor a token: the credential is named,
//!   and an `Authorization` header upstream is shown as a placeholder.
//! - The text and the `--json` output are two renderings of the same [`Decision`].
//! - What `decide` cannot know offline is not judged: signatures and expiry (a token is
//!   decoded without verification, and says so in `notes`), `response_when` and `precheck`
//!   (they need Outseta's answers), rate limits and the body size limit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::{HeaderMap, Method};
use serde::Serialize;

use crate::auth::AuthError;
use crate::config::Config;
use crate::error::{GatewayError, ProblemCode};
use crate::proxy::context::Plan;
use crate::rules::canon::canonicalize;
use crate::rules::expr::{Input, claims_value};
use crate::rules::query::Query;
use crate::rules::{AuthMode, BodyOutcome, CacheMode, Credential, Rule, RuleSet};

/// Where the claims come from.
pub enum ClaimsFrom<'a> {
    /// A JWT, decoded without verifying its signature.
    Token(&'a str),
    /// A JSON object.
    Json(&'a str),
}

/// One request to judge offline.
#[derive(Debug, Clone)]
pub struct Probe {
    pub method: Method,
    /// Path and optional query, as the client sends it (`/api/v1/x?a=b`).
    pub path_and_query: String,
    /// The token's payload (a JSON object); `{}` means no token was sent.
    pub claims: serde_json::Value,
    /// The client's request headers (without `Authorization`: the claims stand for the token).
    pub headers: HeaderMap,
    /// The request body, if any.
    pub body: Option<Vec<u8>>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

/// The matched rule, as configured.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    /// 1-based position of the rule in the file.
    pub index: usize,
    pub name: String,
    pub methods: Vec<String>,
    pub path: String,
    pub auth: &'static str,
    pub when: Option<String>,
    pub query_allow: Option<Vec<String>>,
    /// Whether clients may send `fields` on this rule at all.
    pub takes_fields: bool,
    /// The `fields` paths clients may select; `None`: one-segment paths only.
    pub fields_allow: Option<Vec<String>>,
    /// Forced query values: key → CEL source.
    pub query_set: BTreeMap<String, String>,
    pub body_allow: Option<Vec<String>>,
    /// Top-level body keys silently removed before `body_allow` is checked.
    pub body_drop: Vec<String>,
    /// Forced body keys: key → CEL source.
    pub body_set: BTreeMap<String, String>,
    pub response_when: Option<String>,
    /// The read made before a write: `GET <path template>[?fields=…] → <when>`.
    pub precheck: Option<String>,
    pub credential: &'static str,
    /// `off`, a TTL such as `1m`, or `default (30s)`.
    pub cache: String,
}

/// The request that would go to Outseta.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub method: String,
    /// Path and query exactly as forwarded (any base path of `[outseta] upstream` included).
    pub target: String,
    /// The full URL.
    pub url: String,
    /// `api_key`, `user` or `none` (the key itself is never shown).
    pub credential: &'static str,
    /// The body sent upstream (rewritten when the rule has body rules), if a body was given.
    pub body: Option<String>,
    /// The values `body_set` forces for these claims, when the rule has body rules.
    pub forced_body: Option<serde_json::Value>,
    /// Headers sent upstream (lower-case names). `authorization` holds a placeholder, never a
    /// credential; the per-request `x-request-id` is not listed.
    pub headers: BTreeMap<String, String>,
}

/// The outcome of [`decide`]. Serialised as the `explain --json` object.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// `METHOD path?query` as given.
    pub request: String,
    pub decision: Verdict,
    /// The refusal's HTTP status (absent when allowed).
    pub status: Option<u16>,
    /// The refusal's problem code, e.g. `forbidden` (absent when allowed).
    pub code: Option<&'static str>,
    /// The refusal's problem detail (absent when allowed).
    pub detail: Option<String>,
    /// The rule that decided, when one matched.
    pub rule: Option<RuleInfo>,
    /// Captured path parameters.
    pub path_params: BTreeMap<String, String>,
    /// What would be forwarded (allowed requests only).
    pub upstream: Option<Upstream>,
    /// Caveats: how the claims were obtained, what was not judged.
    pub notes: Vec<String>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.decision == Verdict::Allow
    }

    fn refuse(&mut self, e: GatewayError) {
        let (status, code, _) = e.parts();
        self.decision = Verdict::Deny;
        self.status = Some(status.as_u16());
        self.code = Some(code.as_str());
        self.detail = Some(e.detail());
    }
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

/// The claims for `explain`, with the notes they call for. `Err` is a usage problem.
pub fn claims_from(
    config: &Config,
    from: ClaimsFrom<'_>,
) -> Result<(serde_json::Value, Vec<String>), String> {
    let mut notes = Vec::new();
    let claims = match from {
        ClaimsFrom::Token(t) => {
            let c = decode_unverified(t)?;
            notes.push(
                "token decoded WITHOUT verifying its signature (explain never checks signatures)"
                    .to_string(),
            );
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if let Some(exp) = c.get("exp").and_then(|e| e.as_u64())
                && exp < now
            {
                notes.push(format!(
                    "this token expired {}s ago; serve would answer 401",
                    now - exp
                ));
            }
            for (claim, want) in [
                ("iss", &config.outseta.issuer),
                ("aud", &config.outseta.audience),
            ] {
                if let Some(v) = c.get(claim).and_then(|v| v.as_str())
                    && v != want
                {
                    notes.push(format!(
                        "{claim} is {v:?}, the gateway accepts {want:?}; serve would answer 401"
                    ));
                }
            }
            c
        }
        ClaimsFrom::Json(j) => {
            serde_json::from_str(j).map_err(|e| format!("--claims is not JSON: {e}"))?
        }
    };
    if !claims.is_object() {
        return Err("the claims must be a JSON object".into());
    }
    Ok((claims, notes))
}

/// Builds the `explain` report: text, or one JSON object with `json`. `Err` is a usage
/// problem (bad method, bad claims).
pub fn explain(
    config: &Config,
    method: &str,
    path_and_query: &str,
    claims: ClaimsFrom<'_>,
    body: Option<&str>,
    json: bool,
) -> Result<String, String> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {method:?}"))?;
    let (claims, notes) = claims_from(config, claims)?;
    let probe = Probe {
        method,
        path_and_query: path_and_query.to_string(),
        claims,
        headers: HeaderMap::new(),
        body: body.map(|b| b.as_bytes().to_vec()),
    };
    let mut decision = decide(config, &probe);
    decision.notes.splice(0..0, notes);
    if json {
        let mut out = serde_json::to_string_pretty(&decision)
            .map_err(|e| format!("cannot render the decision: {e}"))?;
        out.push('\n');
        Ok(out)
    } else {
        Ok(render_text(&decision))
    }
}

fn cache_text(config: &Config, mode: CacheMode) -> String {
    match mode {
        CacheMode::Off => "off".to_string(),
        CacheMode::Default => format!("default ({})", humantime::format_duration(config.cache.ttl)),
        CacheMode::Ttl(t) => humantime::format_duration(t).to_string(),
    }
}

fn rule_info(config: &Config, index: usize, rule: &Rule) -> RuleInfo {
    RuleInfo {
        index: index + 1,
        name: rule.name.to_string(),
        methods: rule
            .methods
            .iter()
            .map(|m| m.as_str().to_string())
            .collect(),
        path: rule.template.as_str().to_string(),
        auth: match rule.auth {
            AuthMode::Required => "required",
            AuthMode::Optional => "optional",
            AuthMode::None => "none",
        },
        when: rule.when.as_ref().map(|w| w.source().to_string()),
        query_allow: rule.query_allow.clone(),
        takes_fields: rule.takes_client_fields(),
        fields_allow: rule.fields.patterns(),
        query_set: rule
            .query_set
            .iter()
            .map(|(k, e)| (k.clone(), e.source().to_string()))
            .collect(),
        body_allow: rule.body_allow.clone(),
        body_drop: rule.body_drop.clone(),
        body_set: rule
            .body_set
            .iter()
            .map(|(k, e)| (k.clone(), e.source().to_string()))
            .collect(),
        response_when: rule.response_when.as_ref().map(|r| r.source().to_string()),
        precheck: rule.precheck.as_ref().map(|pc| {
            let fields = pc
                .fields
                .as_ref()
                .map_or_else(String::new, |f| format!("?fields={f}"));
            format!("GET {}{fields} → {}", pc.path.as_str(), pc.when.source())
        }),
        credential: rule.credential.as_str(),
        cache: cache_text(config, rule.cache),
    }
}

/// Judges one request offline, as `serve` would (see the module's guarantees).
pub fn decide(config: &Config, probe: &Probe) -> Decision {
    let mut d = Decision {
        request: format!("{} {}", probe.method, probe.path_and_query),
        decision: Verdict::Allow,
        status: None,
        code: None,
        detail: None,
        rule: None,
        path_params: BTreeMap::new(),
        upstream: None,
        notes: Vec::new(),
    };
    // Read as the HTTP parser in front of `serve` reads a request target: bytes it refuses are
    // a 400, and a fragment is neither judged nor forwarded.
    let Ok(target) = http::uri::PathAndQuery::try_from(probe.path_and_query.as_str()) else {
        d.refuse(GatewayError::BadRequest(
            "the request target is not a valid URI path and query".into(),
        ));
        return d;
    };
    let (raw_path, raw_query) = (target.path(), target.query());
    let path = match canonicalize(raw_path) {
        Ok(p) => p,
        Err(e) => {
            d.refuse(e.into());
            return d;
        }
    };
    let rules: &RuleSet = &config.rules;
    let found = rules
        .find(&probe.method, &path)
        .and_then(|(i, params)| rules.rule(i).map(|r| (i, r, params)));
    let Some((index, rule, params)) = found else {
        d.refuse(crate::proxy::route::no_rule(&path));
        return d;
    };
    d.rule = Some(rule_info(config, index, rule));
    d.path_params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();

    let no_token = probe.claims.as_object().is_none_or(|m| m.is_empty());
    let claims = match rule.auth {
        AuthMode::None => claims_value(&serde_json::json!({})),
        AuthMode::Required if no_token => {
            d.refuse(AuthError::Missing.into());
            return d;
        }
        AuthMode::Optional | AuthMode::Required => claims_value(&probe.claims),
    };
    let query = Query::parse(raw_query);
    let input = Input {
        claims: &claims,
        params: &params,
        query: &query,
        method: probe.method.as_str(),
    };
    let forwarded = match rule.authorize(rules.root(), &input) {
        Ok(q) => q,
        Err(denial) => {
            d.refuse(denial.into());
            return d;
        }
    };

    let rewrites = rule.rewrites_body(&probe.method);
    let forced_body =
        rule.has_body_rules()
            .then(|| match rule.rewrite_body(rules.root(), &input, b"{}") {
                Ok(b) => serde_json::from_slice(&b).ok(),
                Err(e) => {
                    d.notes.push(format!(
                        "body_set cannot be computed for these claims: {}",
                        outcome_error(e).detail()
                    ));
                    None
                }
            });
    let body = match (&probe.body, rewrites) {
        (Some(b), true) => match rule.rewrite_body(rules.root(), &input, b) {
            Ok(rewritten) => Some(String::from_utf8_lossy(&rewritten).into_owned()),
            Err(e) => {
                d.refuse(outcome_error(e));
                return d;
            }
        },
        (Some(b), false) => Some(String::from_utf8_lossy(b).into_owned()),
        (None, true) => {
            d.notes.push(
                "no body given: body_allow/body_set were not applied (serve refuses a missing or non-JSON body with 400)"
                    .to_string(),
            );
            None
        }
        (None, false) => None,
    };
    if rule.response_when.is_some() {
        d.notes.push(
            "response_when is checked on the response, which explain does not have".to_string(),
        );
    }
    if rule.precheck.is_some() {
        d.notes.push(
            "precheck is a read of Outseta made before the write, which explain does not make"
                .to_string(),
        );
    }

    let cache_on = rule.cache_ttl(config.cache.ttl).is_some();
    let plan = Plan {
        method: probe.method.clone(),
        path: path.as_str().to_string(),
        query: forwarded.serialize(),
        credential: rule.credential,
        rule_name: rule.name.clone(),
        shape: crate::upstream::headers::Shape::new(
            cache_on,
            rule.response_when.is_some(),
            rewrites && probe.body.is_some(),
        ),
    };
    let uri = match crate::proxy::forward::upstream_uri(&config.outseta.upstream, &plan) {
        Ok(u) => u,
        Err(e) => {
            d.refuse(e);
            return d;
        }
    };
    let target = uri
        .path_and_query()
        .map_or_else(|| plan.path_and_query(), |pq| pq.as_str().to_string());
    d.upstream = Some(Upstream {
        method: probe.method.to_string(),
        target,
        url: uri.to_string(),
        credential: rule.credential.as_str(),
        body,
        forced_body: forced_body.flatten(),
        headers: upstream_headers(config, &plan, &probe.headers),
    });
    d
}

fn outcome_error(o: BodyOutcome) -> GatewayError {
    match o {
        BodyOutcome::Invalid(msg) => GatewayError::BadRequest(msg),
        BodyOutcome::Denied(denial) => denial.into(),
    }
}

/// The headers `serve` sends upstream for `plan` (as the policy layer and the forwarder set
/// them), with the credential as a placeholder and without the per-request `x-request-id`.
fn upstream_headers(config: &Config, plan: &Plan, client: &HeaderMap) -> BTreeMap<String, String> {
    let h = crate::upstream::headers::upstream_request(
        client,
        &config.outseta.forward_headers,
        plan.shape,
    );
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &h {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let placeholder = match plan.credential {
        Credential::ApiKey => Some("Outseta <api key>:<secret>"),
        Credential::User => Some("<the caller's Authorization header>"),
        Credential::None => None,
    };
    if let Some(p) = placeholder {
        out.insert("authorization".to_string(), p.to_string());
    }
    out
}

/// The rule's `fields` policy line, when clients may send `fields` at all.
fn write_fields_policy(out: &mut String, rule: &RuleInfo) {
    if !rule.takes_fields {
        return;
    }
    let _ = match &rule.fields_allow {
        Some(f) => writeln!(
            out,
            "fields_allow: {} (other `fields` paths → 403, malformed → 400)",
            f.join(", ")
        ),
        None => writeln!(
            out,
            "fields_allow: not set — one-segment `fields` paths only (Uid, *); deeper → 403"
        ),
    };
}

/// The `explain` text report.
pub fn render_text(d: &Decision) -> String {
    let mut out = String::new();
    for (i, note) in d.notes.iter().enumerate() {
        let label = if i == 0 { "note:" } else { "" };
        let _ = writeln!(out, "{label:<13}{note}");
    }
    let _ = writeln!(out, "request:     {}", d.request);
    let Some(rule) = &d.rule else {
        let status = d.status.unwrap_or(0);
        let code = d.code.unwrap_or("");
        let detail = d.detail.as_deref().unwrap_or("");
        if d.code == Some(ProblemCode::BadRequest.as_str()) {
            let _ = writeln!(
                out,
                "decision:    deny — {status} {code}: {detail} (refused before any rule is tried)"
            );
        } else {
            let _ = writeln!(
                out,
                "decision:    deny — {status} {code} (no rule matches {}; default deny)",
                d.request.split('?').next().unwrap_or(&d.request)
            );
        }
        return out;
    };
    let _ = writeln!(
        out,
        "rule:        #{} {:?} ({} {})",
        rule.index,
        rule.name,
        rule.methods.join(","),
        rule.path
    );
    if !d.path_params.is_empty() {
        let p: Vec<String> = d
            .path_params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "path params: {}", p.join(", "));
    }
    let auth = match rule.auth {
        "none" => "none (any token is ignored and stripped; claims = {})",
        "optional" => "optional (verified if sent)",
        other => other,
    };
    let _ = writeln!(out, "auth:        {auth}");
    if let Some(w) = &rule.when {
        let _ = writeln!(out, "when:        {w}");
    }
    match (&d.upstream, d.decision) {
        (Some(up), Verdict::Allow) => {
            let _ = writeln!(out, "decision:    allow");
            let _ = writeln!(out, "upstream:    {} {}", up.method, up.url);
            if let Some(b) = &up.body {
                let _ = writeln!(out, "body:        {b}");
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "decision:    deny — {} {}: {}",
                d.status.unwrap_or(0),
                d.code.unwrap_or(""),
                d.detail.as_deref().unwrap_or("")
            );
            write_fields_policy(&mut out, rule);
            return out;
        }
    }
    let cred = match rule.credential {
        "api_key" => {
            "api_key (Authorization: Outseta <key>:<secret>, from the environment; never shown)"
        }
        "user" => "user (the caller's own bearer token is forwarded)",
        _ => "none (no Authorization header upstream)",
    };
    let _ = writeln!(out, "credential:  {cred}");
    for (k, e) in &rule.query_set {
        let _ = writeln!(
            out,
            "query_set:   {k} = {e} (forced; client values of {k:?} in any case removed)"
        );
    }
    if let Some(a) = &rule.query_allow {
        if a.is_empty() {
            let _ = writeln!(out, "query_allow: none (any query → 403)");
        } else {
            let _ = writeln!(out, "query_allow: {}", a.join(", "));
        }
    }
    write_fields_policy(&mut out, rule);
    if !rule.body_drop.is_empty() {
        let _ = writeln!(
            out,
            "body_drop:   {} (removed before body_allow is checked)",
            rule.body_drop.join(", ")
        );
    }
    if let Some(a) = &rule.body_allow {
        let _ = writeln!(
            out,
            "body_allow:  {} (other top-level JSON keys → 403)",
            a.join(", ")
        );
    }
    if !rule.body_set.is_empty()
        && let Some(f) = d.upstream.as_ref().and_then(|u| u.forced_body.as_ref())
    {
        let _ = writeln!(out, "body_set:    {f} (merged into the JSON body)");
    }
    if rule.body_allow.is_some() || !rule.body_set.is_empty() || !rule.body_drop.is_empty() {
        let _ = writeln!(out, "             a non-JSON or non-object body → 400");
    }
    if let Some(r) = &rule.response_when {
        let _ = writeln!(
            out,
            "response_when: {r} (checked on every 2xx response, cache hits included; false → 403)"
        );
    }
    if let Some(r) = &rule.precheck {
        let _ = writeln!(
            out,
            "precheck:    {r} (read before the write; false → 403, nothing written)"
        );
    }
    let _ = writeln!(out, "cache:       {}", rule.cache);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[outseta]
domain = "yourco.outseta.com"
upstream = "https://yourco.outseta.com/base"

[[rule]]
name = "open a support case"
methods = ["POST"]
path = "/api/v1/support/cases"
body_allow = ["Subject"]
body_set = { "FromPerson" = "{'Uid': claims.sub}" }

[[rule]]
name = "read plan"
methods = ["GET"]
path = "/api/v1/billing/plans/{uid}"
auth = "optional"
credential = "none"
cache = "5m"
"#;

    fn probe(method: Method, pq: &str, body: Option<&str>) -> Probe {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, http::HeaderValue::from_static("a=b"));
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("9"),
        );
        Probe {
            method,
            path_and_query: pq.to_string(),
            claims: serde_json::json!({"sub": "P1"}),
            headers,
            body: body.map(|b| b.as_bytes().to_vec()),
        }
    }

    #[test]
    fn rewritten_body_and_the_headers_serve_sets() {
        let config = Config::from_toml(CONFIG, "t").unwrap();
        let d = decide(
            &config,
            &probe(
                Method::POST,
                "/api/v1/support/cases",
                Some(r#"{"Subject":"s"}"#),
            ),
        );
        assert!(d.allowed(), "{d:?}");
        let up = d.upstream.unwrap();
        // The base path of `[outseta] upstream` is part of the forwarded target.
        assert_eq!(up.target, "/base/api/v1/support/cases");
        let body: serde_json::Value = serde_json::from_str(up.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"Subject": "s", "FromPerson": {"Uid": "P1"}})
        );
        assert_eq!(up.headers["content-type"], "application/json");
        assert_eq!(up.headers["authorization"], "Outseta <api key>:<secret>");
        assert!(!up.headers.contains_key("cookie"));
        // The body changed, so the client's Content-Length is not forwarded.
        assert!(!up.headers.contains_key("content-length"));
    }

    #[test]
    fn no_credential_and_cache_ask_for_identity() {
        let config = Config::from_toml(CONFIG, "t").unwrap();
        let mut p = probe(Method::GET, "/api/v1/billing/plans/X", None);
        p.claims = serde_json::json!({});
        let d = decide(&config, &p);
        let up = d.upstream.as_ref().unwrap();
        assert!(!up.headers.contains_key("authorization"));
        assert_eq!(up.headers["accept-encoding"], "identity");
        assert_eq!(d.rule.as_ref().unwrap().cache, "5m");
        let text = render_text(&d);
        assert!(text.contains("decision:    allow"), "{text}");
        assert!(
            text.contains(
                "upstream:    GET https://yourco.outseta.com/base/api/v1/billing/plans/X"
            ),
            "{text}"
        );
    }

    #[test]
    fn refusals_carry_gateway_error_codes() {
        let config = Config::from_toml(CONFIG, "t").unwrap();
        let cases = [
            (Method::GET, "/api/v1/x/../y", None, 400, "bad_request"),
            (Method::GET, "/api/v1/other", None, 403, "forbidden"),
            (Method::GET, "/other", None, 404, "not_found"),
            (
                Method::POST,
                "/api/v1/support/cases",
                Some("[1]"),
                400,
                "bad_request",
            ),
            (
                Method::POST,
                "/api/v1/support/cases",
                Some(r#"{"Body":"x"}"#),
                403,
                "forbidden",
            ),
        ];
        for (m, pq, body, status, code) in cases {
            let d = decide(&config, &probe(m, pq, body));
            assert_eq!((d.status, d.code), (Some(status), Some(code)), "{pq}");
            assert!(d.upstream.is_none());
        }
        let mut p = probe(Method::POST, "/api/v1/support/cases", None);
        p.claims = serde_json::json!({});
        let d = decide(&config, &p);
        assert_eq!(d.code, Some("missing_token"));
    }

    #[test]
    fn the_fields_policy_is_shown_on_allow_and_on_deny() {
        let config = Config::from_toml(CONFIG, "t").unwrap();
        // "read plan" takes any query: `fields` is limited to one segment.
        let d = decide(
            &config,
            &probe(Method::GET, "/api/v1/billing/plans/p1?fields=Uid", None),
        );
        assert_eq!(d.decision, Verdict::Allow);
        assert!(render_text(&d).contains("fields_allow: not set — one-segment"));
        let d = decide(
            &config,
            &probe(
                Method::GET,
                "/api/v1/billing/plans/p1?fields=PlanFamily.Plans.*",
                None,
            ),
        );
        assert_eq!((d.status, d.code), (Some(403), Some("forbidden")));
        let text = render_text(&d);
        assert!(text.contains("PlanFamily.Plans.*"), "{text}");
        assert!(text.contains("fields_allow: not set"), "{text}");
        let d = decide(
            &config,
            &probe(Method::GET, "/api/v1/billing/plans/p1?fields=A..B", None),
        );
        assert_eq!((d.status, d.code), (Some(400), Some("bad_request")));
    }

    /// outsetapy's `…?fields=*?limit=1?offset=2`: `explain` (and so `test`) reads the pairs
    /// `serve` reads, a `?` separating them like `&`, and judges each.
    #[test]
    fn a_question_mark_separates_query_pairs_as_in_serve() {
        let config =
            Config::from_toml(include_str!("../config/gateway.toml"), "gateway.toml").unwrap();
        let d = decide(
            &config,
            &probe(
                Method::GET,
                "/api/v1/support/cases?fields=*?FromPerson.Uid=victim?limit=1?offset=2",
                None,
            ),
        );
        assert!(d.allowed(), "{d:?}");
        assert_eq!(
            d.upstream.unwrap().target,
            "/api/v1/support/cases?fields=*&limit=1&offset=2&FromPerson.Uid=P1"
        );
        let d = decide(
            &config,
            &probe(Method::GET, "/api/v1/billing/plans?limit=1?Email=x", None),
        );
        assert_eq!((d.status, d.code), (Some(403), Some("forbidden")), "{d:?}");
        assert!(d.detail.as_deref().unwrap_or("").contains("Email"), "{d:?}");
    }

    /// The end-to-end property on the production rules: for any request, whenever `decide`
    /// allows, what goes upstream is what the rule judged.
    mod forwarded_is_judged {
        use std::cell::RefCell;
        use std::collections::BTreeSet;
        use std::sync::LazyLock;

        use proptest::prelude::*;
        use proptest::test_runner::{TestCaseError, TestRunner};
        use serde_json::{Value, json};

        use super::*;
        use crate::rules::query::OPERATOR_SUFFIXES;

        static PRODUCTION: LazyLock<Config> = LazyLock::new(|| {
            Config::from_toml(include_str!("../config/gateway.toml"), "gateway.toml").unwrap()
        });

        const SUB: &str = "DQ2DyknW";
        const ACCOUNT: &str = "E9Ly3PWw";

        /// Rules whose `when` pins a path parameter to a claim: (rule, parameter, claim).
        const PINNED_PARAMS: &[(&str, &str, &str)] = &[
            ("read own person", "uid", "sub"),
            ("read own account", "uid", "outseta:accountUid"),
            ("list own transactions", "accountUid", "outseta:accountUid"),
        ];

        /// Rules whose `when` requires the account's primary contact.
        const PRIMARY_ONLY: &[&str] = &[
            "list own transactions",
            "list own invoices",
            "read own invoice",
        ];

        #[test]
        fn the_pin_tables_name_every_rule_whose_condition_reads_the_path_or_primary() {
            for rule in PRODUCTION.rules.rules() {
                let Some(when) = rule.when.as_ref().map(|w| w.source()) else {
                    continue;
                };
                let name = &*rule.name;
                if when.contains("path.") {
                    assert!(
                        PINNED_PARAMS.iter().any(|(r, ..)| *r == name),
                        "{name}: {when}"
                    );
                }
                if when.contains("isPrimary") {
                    assert!(PRIMARY_ONLY.contains(&name), "{name}: {when}");
                }
            }
        }

        fn user(primary: bool) -> Value {
            json!({
                "sub": SUB,
                "outseta:accountUid": ACCOUNT,
                "outseta:isPrimary": if primary { "1" } else { "0" },
                "email": "bob@example.com",
            })
        }

        /// One of `items`.
        fn select(items: &[&'static str]) -> BoxedStrategy<String> {
            prop::sample::select(items.to_vec())
                .prop_map(str::to_string)
                .boxed()
        }

        /// One of the whitespace-separated `words`.
        fn words(words: &'static str) -> BoxedStrategy<String> {
            select(&words.split_whitespace().collect::<Vec<_>>())
        }

        /// A method and a route of the production rules (or near one); `{sub}` and `{acct}`
        /// stand for the segment a rule pins to that claim, `{id}` for any segment.
        fn route() -> BoxedStrategy<(Method, String)> {
            words(
                "GET:/api/v1/crm/people/{sub} GET:/API/V1/CRM/People/{sub} GET:/api/v1/crm/people
                 DELETE:/api/v1/crm/people/{sub} GET:/api/v1/crm/accounts/{acct}
                 GET:/api/v1/billing/subscriptions GET:/api/v1/billing/subscriptions/{id}
                 PUT:/api/v1/billing/subscriptions/{id} GET:/api/v1/billing/transactions/{acct}
                 GET:/api/v1/billing/invoices GET:/api/v1/billing/invoices/{id}
                 GET:/api/v1/support/cases POST:/api/v1/support/cases POST:/api/v1/Support/Cases
                 GET:/api/v1/support/cases/{id} POST:/api/v1/support/cases/{id}/clientresponse/{id}
                 GET:/api/v1/billing/plans GET:/api/v1/billing/plans/{id}
                 GET:/api/v1/billing/planfamilies GET:/api/v1/billing/planfamilies/{id}
                 GET:/api/v1/profile PUT:/api/v1/profile PUT:/api/v1/profile/password
                 POST:/api/v1/tokens POST:/api/v1/tokens/{id}/{id} POST:/tokens/{id} GET:/",
            )
            .prop_map(|r| {
                let (m, path) = r.split_once(':').unwrap_or(("GET", "/"));
                (
                    Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET),
                    path.to_string(),
                )
            })
            .boxed()
        }

        /// A path segment: mostly the claim values a rule compares to, some look-alikes.
        fn id() -> BoxedStrategy<String> {
            prop_oneof![
                3 => select(&[SUB, ACCOUNT]),
                1 => words("dq2dyknw victim %44Q2DyknW E9Ly3PW%77 p1 %2e%2e x%2Fy"),
            ]
            .boxed()
        }

        /// Path and query tricks and stray characters, inserted anywhere.
        fn piece() -> BoxedStrategy<String> {
            prop_oneof![
                4 => words(
                    "%2e %2E%2e .. . // /.. /. / %2F %2f %5C \\ %00 %25 % %23 %3F # ? & = é %C3%A9
                     * ; {uid} < + %20 ~ - _ ?fields= &fields= ?Account.Uid= &account.uid= __ne
                     __gt , PersonAccount.Person.Email &limit=1 %26 %3D %FF",
                ),
                1 => select(&[SUB, ACCOUNT, " ", "\t", "\0"]),
                1 => "[A-Za-z0-9]{1,3}",
                1 => any::<char>().prop_map(String::from),
            ]
            .boxed()
        }

        /// A query of keys the rules know (and some they refuse), with plausible values.
        fn query() -> BoxedStrategy<String> {
            let key = prop_oneof![
                4 => words("fields Fields FIELDS"),
                2 => words("limit offset orderBy"),
                2 => words(
                    "Account.Uid account.uid Account.Uid__ne ACCOUNT.UID__ISNULL FromPerson.Uid
                     Subscription.Account.Uid sendAutoResponder IsActive PlanFamily.Uid Email
                     Account%2EUid",
                ),
            ];
            let value = prop_oneof![
                4 => words(
                    "* Uid *,Uid PersonAccount.* PersonAccount.Person.Email Plans.* Plan.*
                     PersonAccount.Account.Uid Invoice.* FromPerson.Uid Account.Uid Uid,,Name",
                ),
                1 => words("10 victim Name+DESC"),
                1 => select(&[SUB, ACCOUNT, ""]),
            ];
            // Pairs joined with `&`, or with `?` as outsetapy joins them.
            (
                prop::collection::vec((key, value), 0..3),
                select(&["&", "&", "?"]),
            )
                .prop_map(|(kv, sep)| {
                    let pairs: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    pairs.join(&sep)
                })
                .boxed()
        }

        /// A well-formed request: a method and route, its segments (mostly the claim a pinned
        /// segment wants), an optional query.
        fn clean() -> BoxedStrategy<(Method, String)> {
            (
                route(),
                prop::collection::vec((prop::bool::weighted(0.7), id()), 2),
                prop::option::weighted(0.6, query()),
            )
                .prop_map(|((m, mut pq), segments, q)| {
                    for (intended, other) in segments {
                        let Some(at) = pq.find('{') else { break };
                        let end = pq[at..].find('}').map_or(pq.len(), |e| at + e + 1);
                        let value = match (intended, &pq[at..end]) {
                            (true, "{sub}") => SUB,
                            (true, "{acct}") => ACCOUNT,
                            _ => other.as_str(),
                        };
                        pq.replace_range(at..end, value);
                    }
                    if let Some(q) = q {
                        pq.push('?');
                        pq.push_str(&q);
                    }
                    (m, pq)
                })
                .boxed()
        }

        /// Method, path and query as a client sends them: a well-formed request, the same
        /// with tricks inserted at arbitrary places, pieces in any order, or any string at
        /// all; now and then with another method.
        fn request() -> BoxedStrategy<(Method, String)> {
            let spliced = (
                clean(),
                prop::collection::vec((any::<prop::sample::Index>(), piece()), 1..4),
            )
                .prop_map(|((m, pq), inserts)| {
                    let mut chars: Vec<char> = pq.chars().collect();
                    for (at, p) in inserts {
                        let i = at.index(chars.len() + 1);
                        chars.splice(i..i, p.chars());
                    }
                    (m, chars.into_iter().collect())
                });
            let path = prop_oneof![route().prop_map(|(_, r)| r), id(), piece()];
            let jumbled = (
                route().prop_map(|(m, _)| m),
                prop::collection::vec(path, 0..12).prop_map(|p| p.concat()),
            );
            let anything = (route().prop_map(|(m, _)| m), any::<String>());
            let other = prop::sample::select(vec![
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ]);
            (
                prop_oneof![4 => clean(), 4 => spliced, 1 => jumbled, 1 => anything],
                prop::option::weighted(0.15, other),
            )
                .prop_map(|((m, pq), other)| (other.unwrap_or(m), pq))
                .boxed()
        }

        /// Any request body: none, a JSON object with keys the rules name (and a forged
        /// `FromPerson`), or any bytes.
        fn body() -> BoxedStrategy<Option<Vec<u8>>> {
            let key = words(
                "Subject subject Body Source FromPerson fromperson Uid FirstName Email
                 ExistingPassword NewPassword IsPrimary",
            );
            let value = prop_oneof![
                "\\PC{0,6}".prop_map(Value::String),
                Just(json!({"Uid": "victim"})),
                Just(json!(null)),
                any::<i64>().prop_map(Value::from),
            ];
            let object = prop::collection::vec((key, value), 0..4).prop_map(|kv| {
                let map: serde_json::Map<String, Value> = kv.into_iter().collect();
                Value::Object(map).to_string().into_bytes()
            });
            prop_oneof![
                3 => Just(None),
                4 => object.prop_map(Some),
                1 => prop::collection::vec(any::<u8>(), 0..16).prop_map(Some),
            ]
            .boxed()
        }

        /// A request by a primary or non-primary user, or by an anonymous caller.
        fn probe() -> impl Strategy<Value = Probe> {
            let claims = prop_oneof![
                4 => Just(user(true)),
                4 => Just(user(false)),
                1 => Just(json!({})),
            ];
            (request(), claims, body()).prop_map(|((method, pq), claims, body)| Probe {
                method,
                path_and_query: pq,
                claims,
                headers: HeaderMap::new(),
                body,
            })
        }

        /// `key` is `base` or `base` with an operator suffix, any case.
        fn forced_form(key: &str, base: &str) -> bool {
            let (k, b) = (key.to_ascii_lowercase(), base.to_ascii_lowercase());
            k.strip_prefix(&b)
                .is_some_and(|rest| rest.is_empty() || OPERATOR_SUFFIXES.contains(&rest))
        }

        /// An allow-list entry admits `key`: equal in any case, or `Base__*` and a
        /// suffixed form of `Base`.
        fn admitted(allow: &[String], key: &str) -> bool {
            allow.iter().any(|a| match a.strip_suffix("__*") {
                Some(base) => forced_form(key, base),
                None => a.eq_ignore_ascii_case(key),
            })
        }

        /// Everything an allowed decision must satisfy; returns the rule's name.
        fn check_allowed(probe: &Probe, d: &Decision) -> Result<String, TestCaseError> {
            let config = &*PRODUCTION;
            let rules = &config.rules;
            let fail = |m: String| TestCaseError::fail(format!("{probe:?}\n{m}\n{d:?}"));
            let up = d
                .upstream
                .as_ref()
                .ok_or_else(|| fail("allowed, nothing forwarded".into()))?;
            let info = d
                .rule
                .as_ref()
                .ok_or_else(|| fail("allowed by no rule".into()))?;
            let index = info.index - 1;
            let rule = rules
                .rule(index)
                .ok_or_else(|| fail("no such rule".into()))?;

            // The forwarded path is exactly the canonical form of the path that was judged.
            // The path as the HTTP parser in front of `serve` reads it (a fragment cut off).
            let target = http::uri::PathAndQuery::try_from(probe.path_and_query.as_str())
                .map_err(|e| fail(format!("allowed a target the HTTP parser refuses: {e}")))?;
            let canon = canonicalize(target.path())
                .map_err(|e| fail(format!("allowed a path canonicalize refuses: {e}")))?;
            let prefix = config.outseta.upstream.path().trim_end_matches('/');
            let (target_path, target_query) = match up.target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (up.target.as_str(), None),
            };
            prop_assert_eq!(
                target_path,
                format!("{prefix}{}", canon.as_str()),
                "forwarded path is not the judged path: {:?}",
                probe
            );
            prop_assert_eq!(&up.method, probe.method.as_str());

            // The rule is the first whose methods and template match that path.
            let first = rules.rules().iter().position(|r| {
                r.methods.contains(&probe.method) && r.template.matches(canon.segments()).is_some()
            });
            prop_assert_eq!(
                first,
                Some(index),
                "not the first matching rule: {:?}",
                probe
            );
            let params = rule
                .template
                .matches(canon.segments())
                .ok_or_else(|| fail("template does not match".into()))?;
            let by_name: BTreeMap<String, String> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            prop_assert_eq!(&by_name, &d.path_params);

            // Who may have been allowed.
            let claim = |name: &str| probe.claims.get(name).and_then(Value::as_str);
            if rule.auth == AuthMode::Required {
                prop_assert!(
                    claim("sub").is_some(),
                    "a required token was absent: {probe:?}"
                );
            }
            for (r, param, c) in PINNED_PARAMS {
                if *r == &*rule.name {
                    prop_assert_eq!(
                        d.path_params.get(*param).map(String::as_str),
                        claim(c),
                        "{} not pinned to {}: {:?}",
                        param,
                        c,
                        probe
                    );
                }
            }
            if PRIMARY_ONLY.contains(&&*rule.name) {
                prop_assert_eq!(claim("outseta:isPrimary"), Some("1"));
            }

            // Every forwarded query key is admitted or forced; forced keys hold exactly
            // their forced value, once; client `fields` passed the rule's policy.
            let forwarded = Query::parse(target_query);
            let claims = claims_value(&probe.claims);
            let none = Query::default();
            let input = Input {
                claims: &claims,
                params: &params,
                query: &none,
                method: probe.method.as_str(),
            };
            let forced = rule
                .authorize(rules.root(), &input)
                .map_err(|e| fail(format!("forced values not computable: {e}")))?;
            for (k, v) in forwarded.pairs() {
                match rule.query_set.iter().find(|(f, _)| forced_form(k, f)) {
                    Some((f, _)) => {
                        prop_assert_eq!(k, f, "client spelling of a forced key: {:?}", probe);
                        prop_assert_eq!(Some(v.as_str()), forced.first(f));
                    }
                    None => {
                        prop_assert!(
                            rule.query_allow.as_deref().is_none_or(|a| admitted(a, k)),
                            "{k:?} forwarded, not in query_allow: {probe:?}"
                        );
                        if k.eq_ignore_ascii_case("fields") {
                            prop_assert!(rule.fields.check(v).is_ok(), "fields={v:?}: {probe:?}");
                        }
                    }
                }
            }
            for (f, _) in &rule.query_set {
                prop_assert_eq!(forwarded.values(f).count(), 1, "forced {} not once", f);
            }

            // A rewritten body holds only admitted or forced keys, and the forced values.
            if rule.rewrites_body(&probe.method) && probe.body.is_some() {
                let sent: Value = up
                    .body
                    .as_deref()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .ok_or_else(|| fail("rewritten body is not JSON".into()))?;
                let sent = sent
                    .as_object()
                    .ok_or_else(|| fail("rewritten body is not an object".into()))?;
                for k in sent.keys() {
                    let is_forced = rule.body_set.iter().any(|(f, _)| f == k);
                    let allowed = rule
                        .body_allow
                        .as_deref()
                        .is_none_or(|a| a.iter().any(|x| x.eq_ignore_ascii_case(k)));
                    prop_assert!(is_forced || allowed, "body key {k:?}: {probe:?}");
                }
                for (f, _) in &rule.body_set {
                    prop_assert_eq!(
                        sent.get(f),
                        up.forced_body.as_ref().and_then(|b| b.get(f)),
                        "forced body key {}",
                        f
                    );
                }
                if rule.body_set.iter().any(|(f, _)| f == "FromPerson") {
                    prop_assert_eq!(sent.get("FromPerson"), Some(&json!({"Uid": SUB})));
                }
            }

            // The forwarded request is itself one the rules allow, by the same rule, and it
            // goes upstream unchanged.
            let again = Probe {
                method: probe.method.clone(),
                path_and_query: up.target[prefix.len()..].to_string(),
                claims: probe.claims.clone(),
                headers: HeaderMap::new(),
                body: up.body.as_ref().map(|b| b.as_bytes().to_vec()),
            };
            let d2 = decide(config, &again);
            prop_assert!(
                d2.allowed(),
                "the forwarded request is refused: {:?}\n{:?}",
                probe,
                d2
            );
            prop_assert_eq!(d2.rule.as_ref().map(|r| r.index), Some(info.index));
            prop_assert_eq!(&d2.path_params, &d.path_params);
            let up2 = d2
                .upstream
                .as_ref()
                .ok_or_else(|| fail("re-decided, nothing forwarded".into()))?;
            prop_assert_eq!(&up2.target, &up.target, "target not stable: {:?}", probe);
            prop_assert_eq!(&up2.body, &up.body, "body not stable: {:?}", probe);
            Ok(rule.name.to_string())
        }

        /// A GET by a primary user.
        fn get(pq: &str) -> Probe {
            Probe {
                method: Method::GET,
                path_and_query: pq.to_string(),
                claims: user(true),
                headers: HeaderMap::new(),
                body: None,
            }
        }

        /// For any request: `decide` never panics, and when it allows, the upstream target is
        /// the canonical form of the judged path with a query the rule admitted or forced,
        /// pinned parameters equal their claims, the body holds only admitted or forced keys,
        /// and the forwarded request is itself allowed, by the same rule, unchanged. Every
        /// production rule must allow some of the requests, or the property was vacuous for it.
        #[test]
        fn an_allowed_request_forwards_only_what_its_rule_judged() {
            const CASES: u32 = 4000;
            let mut runner = TestRunner::new(ProptestConfig {
                cases: CASES,
                failure_persistence: None,
                ..ProptestConfig::default()
            });
            let allowed = RefCell::new(Vec::<String>::new());
            let result = runner.run(&probe(), |probe| {
                let d = decide(&PRODUCTION, &probe);
                if d.allowed() {
                    allowed.borrow_mut().push(check_allowed(&probe, &d)?);
                } else {
                    prop_assert!(d.upstream.is_none() && d.status.is_some(), "{:?}", d);
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{e}");
            }
            let allowed = allowed.into_inner();
            let seen: BTreeSet<&str> = allowed.iter().map(String::as_str).collect();
            let never: Vec<&str> = PRODUCTION
                .rules
                .rules()
                .iter()
                .map(|r| &*r.name)
                .filter(|r| !seen.contains(r))
                .collect();
            assert!(
                allowed.len() as u32 >= CASES / 10 && never.is_empty(),
                "{} of {CASES} allowed; never allowed by: {never:?}",
                allowed.len()
            );
        }

        /// The HTTP parser in front of `serve` ends a target's path at `#` (a fragment is
        /// never judged nor sent: `serve` judges and forwards `/api/v1/crm/people/u1` for
        /// `/api/v1/crm/people/u1#x`). `decide` must judge the path it forwards: were `#…`
        /// judged and then dropped, "read own invoice" would judge uid `#DQ2DyknW` and
        /// forward the invoice list.
        #[test]
        fn a_target_with_a_fragment_forwards_the_path_that_was_judged() {
            let mut wrong = Vec::new();
            for pq in [
                "/api/v1/billing/invoices/#DQ2DyknW",
                "/api/v1/billing/plans/p1#x",
            ] {
                let probe = get(pq);
                let d = decide(&PRODUCTION, &probe);
                if d.allowed()
                    && let Err(e) = check_allowed(&probe, &d)
                {
                    wrong.push(format!(
                        "{pq}: judged by {:?} with {:?}, target {:?}\n  {e}",
                        d.rule.as_ref().map(|r| &r.name),
                        d.path_params,
                        d.upstream.as_ref().map(|u| &u.target),
                    ));
                }
            }
            assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        }

        /// `decide` answers what `serve` answers for a target with a fragment (judged
        /// without it) and for bytes the HTTP parser refuses in a path (400 before the
        /// gateway sees the request).
        #[test]
        fn decide_reads_a_target_as_serve_receives_it() {
            let verdict = |pq: &str| {
                let d = decide(&PRODUCTION, &get(pq));
                (d.decision, d.status)
            };
            let mut wrong = Vec::new();
            for (pq, as_served) in [
                (
                    "/api/v1/crm/people/DQ2DyknW#x",
                    "/api/v1/crm/people/DQ2DyknW",
                ),
                ("/api/v1/billing/plans#x?Email=1", "/api/v1/billing/plans"),
                (
                    "/api/v1/billing/subscriptions?fields=Uid#,Email",
                    "/api/v1/billing/subscriptions?fields=Uid",
                ),
            ] {
                let (got, want) = (verdict(pq), verdict(as_served));
                if got != want {
                    wrong.push(format!("{pq}: {got:?}, serve: {want:?} (as {as_served})"));
                }
            }
            for pq in ["/api/v1/billing/plans/a<b", "/api/v1/billing/plans/a b"] {
                assert!(http::uri::PathAndQuery::try_from(pq).is_err());
                let got = verdict(pq);
                if got != (Verdict::Deny, Some(400)) {
                    wrong.push(format!("{pq}: {got:?}, serve: 400 from the HTTP parser"));
                }
            }
            assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        }
    }
}
