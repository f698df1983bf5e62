//! The rules: compiled once at load, evaluated per request with no IO.
//!
//! # Semantics (docs/behaviour.md, "Rule semantics")
//! Rules are tried in file order; the first whose methods and path template match is *the*
//! rule. Its `when` decides allow/deny; later rules are never tried. No rule: deny.
//! Everything here is pure: the policy layer calls it with the verified claims, and `explain`
//! calls it offline with the same code, so what `explain` prints is what `serve` does.
//!
//! # Guarantees
//! - Any evaluation error is a deny.
//! - A rule with `credential = "api_key"` whose template could match `/api/v1/tokens*` (or
//!   `/tokens*`) does not compile: with the API key Outseta mints a token for any username.
//! - The query returned by [`Rule::authorize`] is the query that is forwarded and cached.
//! - Every client `fields` value that reaches that query passed the rule's [`fields`] policy
//!   (`fields_allow`, or one-segment paths only); a malformed one is a
//!   [`Denial::FieldsMalformed`] (400), a refused path a [`Denial::FieldNotAllowed`] (403).

pub mod body;
pub mod canon;
pub mod entry;
pub mod expr;
pub mod fields;
pub mod query;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::units::parse_duration;
use entry::{PrecheckEntry, RuleEntry};
use expr::{Expr, Input, Root, Site};
use fields::{FieldsError, FieldsPolicy};
use query::Query;
use template::{Params, PathTemplate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A valid token is required.
    Required,
    /// A token is verified if sent; without one the claims are `{}`.
    Optional,
    /// Any token is ignored (and stripped).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Outseta <key>:<secret>`.
    ApiKey,
    /// The caller's own bearer token, forwarded.
    User,
    /// No `Authorization` upstream.
    None,
}

impl Credential {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::User => "user",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    Off,
    /// `[cache].ttl`.
    Default,
    Ttl(Duration),
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: Arc<str>,
    pub methods: Vec<Method>,
    pub template: PathTemplate,
    pub when: Option<Expr>,
    pub auth: AuthMode,
    pub credential: Credential,
    pub cache: CacheMode,
    pub query_allow: Option<Vec<String>>,
    pub query_set: Vec<(String, Expr)>,
    /// What the client's `fields` may select (when the client may send `fields` at all).
    pub fields: FieldsPolicy,
    pub body_allow: Option<Vec<String>>,
    /// Top-level body keys removed before `body_allow` is checked (read-only fields).
    pub body_drop: Vec<String>,
    pub body_set: Vec<(String, Expr)>,
    pub response_when: Option<Expr>,
    pub invalidates: Vec<PathTemplate>,
    /// A read judged before a write is forwarded (e.g. that a support case is the caller's).
    pub precheck: Option<Precheck>,
    needs: expr::Needs,
}

/// A read the gateway makes, with the rule's credential, before it forwards a write; the
/// write goes upstream only if `when` holds over the read's JSON answer. For writes whose
/// target's owner is only known to Outseta (a reply to a support case), where `response_when`
/// would come too late: the write would already be made.
#[derive(Debug)]
pub struct Precheck {
    /// Rendered with the request's path parameters and the caller's claims.
    pub path: PathTemplate,
    /// Sent as `fields=…` (Outseta's field selection), so the read carries what `when` needs.
    pub fields: Option<String>,
    /// Evaluated with `response` bound to the read's answer.
    pub when: Expr,
}

/// Why a request (or response) was denied by its rule. Shown to the client as `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    NoRule,
    ConditionFalse {
        rule: Arc<str>,
    },
    ConditionError {
        rule: Arc<str>,
        error: String,
    },
    QueryNotAllowed {
        rule: Arc<str>,
        key: String,
    },
    ForcedValue {
        rule: Arc<str>,
        key: String,
        error: String,
    },
    BodyNotAllowed {
        rule: Arc<str>,
        key: String,
    },
    /// A `fields` path outside the rule's `fields_allow` (403).
    FieldNotAllowed {
        rule: Arc<str>,
        path: String,
    },
    /// A `fields` value that is not a list of field paths (400, not 403).
    FieldsMalformed {
        rule: Arc<str>,
        error: String,
    },
    ResponseFalse {
        rule: Arc<str>,
    },
    ResponseError {
        rule: Arc<str>,
        error: String,
    },
    /// The precheck's answer does not satisfy its `when`: the write was not forwarded.
    PrecheckFalse {
        rule: Arc<str>,
    },
    PrecheckError {
        rule: Arc<str>,
        error: String,
    },
}

impl Denial {
    /// The request itself is malformed (400 `bad_request`) rather than refused (403).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::FieldsMalformed { .. })
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoRule => f.write_str("no rule allows this request"),
            Self::ConditionFalse { rule } => write!(f, "rule {rule:?}: condition is false"),
            Self::ConditionError { rule, error } => {
                write!(
                    f,
                    "rule {rule:?}: condition could not be evaluated ({error})"
                )
            }
            Self::QueryNotAllowed { rule, key } => {
                write!(f, "rule {rule:?}: query parameter {key:?} is not allowed")
            }
            Self::ForcedValue { rule, key, error } => {
                write!(
                    f,
                    "rule {rule:?}: forced value for {key:?} could not be computed ({error})"
                )
            }
            Self::BodyNotAllowed { rule, key } => {
                write!(f, "rule {rule:?}: body field {key:?} is not allowed")
            }
            Self::FieldNotAllowed { rule, path } => {
                write!(
                    f,
                    "rule {rule:?}: field path {path:?} is not allowed (see `fields_allow`)"
                )
            }
            Self::FieldsMalformed { rule, error } => write!(f, "rule {rule:?}: {error}"),
            Self::ResponseFalse { rule } => write!(f, "rule {rule:?}: response check is false"),
            Self::ResponseError { rule, error } => {
                write!(
                    f,
                    "rule {rule:?}: response check could not be evaluated ({error})"
                )
            }
            Self::PrecheckFalse { rule } => {
                write!(f, "rule {rule:?}: precheck is false (nothing was written)")
            }
            Self::PrecheckError { rule, error } => {
                write!(
                    f,
                    "rule {rule:?}: precheck could not be evaluated ({error}; nothing was written)"
                )
            }
        }
    }
}

/// Result of body rewriting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyOutcome {
    /// Not a JSON object (→ 400).
    Invalid(String),
    Denied(Denial),
}

const TOKEN_PREFIXES: &[&[&str]] = &[&["api", "v1", "tokens"], &["tokens"]];

/// Compiles a rule's `precheck`, pushing every problem; `params` are the names `path` captures.
fn compile_precheck(
    entry: &PrecheckEntry,
    params: &[&str],
    methods: &[Method],
    p: &mut dyn FnMut(String),
) -> Option<Precheck> {
    let problem = |p: &mut dyn FnMut(String), msg: String| p(format!("`precheck`: {msg}"));
    let mut ok = true;
    let safe = |m: &Method| {
        matches!(
            *m,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        )
    };
    if methods.iter().any(safe) {
        problem(
            p,
            "applies to writes only (judge a read's answer with `response_when`)".into(),
        );
        ok = false;
    }
    let path = match entry.path.as_deref() {
        None => {
            problem(p, "missing `path`".into());
            None
        }
        Some(t) => match PathTemplate::parse_rendered(t) {
            Ok(tpl) => {
                if let Some(missing) = tpl.param_names().find(|n| !params.contains(n)) {
                    problem(
                        p,
                        format!(
                            "{t:?} uses {{{missing}}}, which the rule's `path` does not capture"
                        ),
                    );
                    None
                } else if TOKEN_PREFIXES.iter().any(|pre| tpl.may_match_under(pre)) {
                    problem(p, format!("{t:?} can match /api/v1/tokens*"));
                    None
                } else {
                    Some(tpl)
                }
            }
            Err(e) => {
                problem(p, e);
                None
            }
        },
    };
    let fields = match entry.fields.as_deref().map(str::trim) {
        None => None,
        Some(f)
            if !f.is_empty()
                && f.split(',').all(|path| {
                    !path.is_empty()
                        && path.split('.').all(|seg| {
                            !seg.is_empty()
                                && seg
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'*')
                        })
                }) =>
        {
            Some(f.to_string())
        }
        Some(f) => {
            problem(
                p,
                format!("`fields` {f:?} is not a comma-separated list of field paths"),
            );
            ok = false;
            None
        }
    };
    let when = match entry.when.as_deref() {
        None => {
            problem(p, "missing `when`".into());
            None
        }
        Some(src) => match Expr::compile(src, Site::Response, params) {
            Ok(e) => Some(e),
            Err(e) => {
                problem(p, format!("`when`: {e}"));
                None
            }
        },
    };
    match (ok, path, when) {
        (true, Some(path), Some(when)) => Some(Precheck { path, fields, when }),
        _ => None,
    }
}

impl Rule {
    /// Compiles one `[[rule]]`; pushes every problem (prefixed with `label`) and returns
    /// `None` if there was any.
    pub fn compile(entry: &RuleEntry, label: &str, problems: &mut Vec<String>) -> Option<Self> {
        let before = problems.len();
        let mut p = |msg: String| problems.push(format!("{label}: {msg}"));

        let name: Arc<str> = match entry.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.into(),
            _ => {
                p("missing `name`".into());
                "".into()
            }
        };
        let mut methods = Vec::new();
        match &entry.methods {
            None => p("missing `methods`".into()),
            Some(ms) if ms.is_empty() => p("`methods` must not be empty".into()),
            Some(ms) => {
                for m in ms {
                    let up = m.to_ascii_uppercase();
                    if !matches!(
                        up.as_str(),
                        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE"
                    ) {
                        p(format!(
                            "`methods`: unsupported method {m:?} (GET, HEAD, POST, PUT, PATCH, DELETE)"
                        ));
                    } else if let Ok(method) = Method::from_bytes(up.as_bytes())
                        && !methods.contains(&method)
                    {
                        methods.push(method);
                    }
                }
            }
        }
        let template = match entry.path.as_deref() {
            None => {
                p("missing `path`".into());
                None
            }
            Some(t) => match PathTemplate::parse(t) {
                Ok(t) => Some(t),
                Err(e) => {
                    p(format!("`path`: {e}"));
                    None
                }
            },
        };
        let params: Vec<&str> = template
            .as_ref()
            .map(|t| t.param_names().collect())
            .unwrap_or_default();

        let compile =
            |key: &str, src: &str, site: Site, p: &mut dyn FnMut(String)| -> Option<Expr> {
                match Expr::compile(src, site, &params) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        p(format!("`{key}`: {e}"));
                        None
                    }
                }
            };
        let when = entry
            .when
            .as_deref()
            .and_then(|s| compile("when", s, Site::Request, &mut p));
        let response_when = entry
            .response_when
            .as_deref()
            .and_then(|s| compile("response_when", s, Site::Response, &mut p));
        let mut query_set = Vec::new();
        for (k, src) in entry.query_set.iter().flatten() {
            if k.is_empty() {
                p("`query_set`: empty key".into());
            }
            if let Some(e) = compile(&format!("query_set.{k}"), src, Site::Request, &mut p) {
                query_set.push((k.clone(), e));
            }
        }
        let mut body_set = Vec::new();
        for (k, src) in entry.body_set.iter().flatten() {
            if k.is_empty() {
                p("`body_set`: empty key".into());
            }
            if let Some(e) = compile(&format!("body_set.{k}"), src, Site::Request, &mut p) {
                body_set.push((k.clone(), e));
            }
        }

        let auth = match entry.auth.as_deref().unwrap_or("required") {
            "required" => AuthMode::Required,
            "optional" => AuthMode::Optional,
            "none" => AuthMode::None,
            other => {
                p(format!(
                    "`auth`: {other:?} is not one of \"required\", \"optional\", \"none\""
                ));
                AuthMode::Required
            }
        };
        let credential = match entry.credential.as_deref().unwrap_or("api_key") {
            "api_key" => Credential::ApiKey,
            "user" => Credential::User,
            "none" => Credential::None,
            other => {
                p(format!(
                    "`credential`: {other:?} is not one of \"api_key\", \"user\", \"none\""
                ));
                Credential::ApiKey
            }
        };
        if credential == Credential::User && auth == AuthMode::None {
            p("`credential = \"user\"` forwards the caller's token, which `auth = \"none\"` strips; use auth \"required\" or \"optional\"".into());
        }
        let cache = match entry.cache.as_deref() {
            None | Some("off") => CacheMode::Off,
            Some("default") => CacheMode::Default,
            Some(d) => match parse_duration(d) {
                Ok(ttl) if !ttl.is_zero() => CacheMode::Ttl(ttl),
                Ok(_) => CacheMode::Off,
                Err(e) => {
                    p(format!(
                        "`cache`: {e} (use a duration, \"default\" or \"off\")"
                    ));
                    CacheMode::Off
                }
            },
        };
        if cache != CacheMode::Off && !methods.is_empty() && !methods.contains(&Method::GET) {
            p("`cache` applies to GET only, and this rule has no GET".into());
        }
        let body_drop = entry.body_drop.clone().unwrap_or_default();
        let has_body_rules =
            entry.body_allow.is_some() || !body_set.is_empty() || !body_drop.is_empty();
        if has_body_rules
            && !methods.is_empty()
            && methods
                .iter()
                .all(|m| *m == Method::GET || *m == Method::HEAD)
        {
            p(
                "`body_allow`/`body_drop`/`body_set` apply to request bodies, and this rule only has GET/HEAD"
                    .into(),
            );
        }
        let check_keys = |key: &str, list: &Option<Vec<String>>, p: &mut dyn FnMut(String)| {
            if let Some(l) = list
                && l.iter().any(|k| k.trim().is_empty())
            {
                p(format!("`{key}`: entries must not be empty"));
            }
        };
        check_keys("query_allow", &entry.query_allow, &mut p);
        check_keys("body_allow", &entry.body_allow, &mut p);
        check_keys("body_drop", &entry.body_drop, &mut p);
        for dropped in &body_drop {
            let same = |k: &String| k.eq_ignore_ascii_case(dropped);
            if entry.body_allow.iter().flatten().any(same) || body_set.iter().any(|(k, _)| same(k))
            {
                p(format!(
                    "`body_drop`: {dropped:?} is also in `body_allow` or `body_set`; a key is either dropped or judged"
                ));
            }
        }
        if let Some(l) = &entry.query_allow
            && let Some(bad) = l.iter().find(|k| k.ends_with("__*") && k.len() == 3)
        {
            p(format!(
                "`query_allow`: {bad:?} has no field name before `__*`"
            ));
        }
        let fields = match FieldsPolicy::compile(entry.fields_allow.as_deref()) {
            Ok(f) => f,
            Err(errors) => {
                for e in errors {
                    p(format!("`fields_allow`: {e}"));
                }
                FieldsPolicy::default()
            }
        };
        if entry.fields_allow.is_some() {
            let forced = entry
                .query_set
                .iter()
                .flatten()
                .any(|(k, _)| k.eq_ignore_ascii_case("fields"));
            let allowed = entry
                .query_allow
                .as_ref()
                .is_none_or(|l| l.iter().any(|k| k.eq_ignore_ascii_case("fields")));
            if forced || !allowed {
                p("`fields_allow` is set, but clients cannot send `fields` on this rule (it is forced by `query_set` or missing from `query_allow`)".into());
            }
        }

        let mut invalidates = Vec::new();
        for t in entry.invalidates.iter().flatten() {
            match PathTemplate::parse_rendered(t) {
                Ok(inv) => {
                    if let Some(missing) = inv.param_names().find(|n| !params.contains(n)) {
                        p(format!(
                            "`invalidates`: {t:?} uses {{{missing}}}, which `path` does not capture"
                        ));
                    } else {
                        invalidates.push(inv);
                    }
                }
                Err(e) => p(format!("`invalidates`: {e}")),
            }
        }

        let precheck = entry
            .precheck
            .as_ref()
            .and_then(|pc| compile_precheck(pc, &params, &methods, &mut p));

        if credential == Credential::ApiKey
            && let Some(t) = &template
            && TOKEN_PREFIXES.iter().any(|pre| t.may_match_under(pre))
        {
            p(format!(
                "`credential = \"api_key\"` on {:?} is refused: this template can match /api/v1/tokens*, where Outseta mints a token for any username when it sees the API key; use credential \"none\" (login) or \"user\"",
                t.as_str()
            ));
        }

        if problems.len() > before {
            return None;
        }
        let template = template?;
        let uses_path = when
            .iter()
            .chain(response_when.iter())
            .chain(precheck.iter().map(|pc| &pc.when))
            .chain(query_set.iter().map(|(_, e)| e))
            .chain(body_set.iter().map(|(_, e)| e))
            .any(|e| e.uses_path);
        let uses_query = when
            .iter()
            .chain(response_when.iter())
            .chain(precheck.iter().map(|pc| &pc.when))
            .chain(query_set.iter().map(|(_, e)| e))
            .chain(body_set.iter().map(|(_, e)| e))
            .any(|e| e.uses_query);
        Some(Self {
            name,
            methods,
            template,
            when,
            auth,
            credential,
            cache,
            query_allow: entry.query_allow.clone(),
            query_set,
            fields,
            body_allow: entry.body_allow.clone(),
            body_drop,
            body_set,
            response_when,
            invalidates,
            precheck,
            needs: expr::Needs {
                path: uses_path,
                query: uses_query,
            },
        })
    }

    /// Whether clients may send their own `fields` (not forced, and allowed by `query_allow`).
    pub fn takes_client_fields(&self) -> bool {
        let forced = self
            .query_set
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("fields"));
        let allowed = self
            .query_allow
            .as_ref()
            .is_none_or(|l| l.iter().any(|k| k.eq_ignore_ascii_case("fields")));
        allowed && !forced
    }

    /// Whether the rule has `body_allow`/`body_drop`/`body_set`.
    pub fn has_body_rules(&self) -> bool {
        self.body_allow.is_some() || !self.body_set.is_empty() || !self.body_drop.is_empty()
    }

    /// Whether a request with `method` must have its body buffered and rewritten: body rules
    /// apply to the methods that carry a body (POST, PUT, PATCH).
    pub fn rewrites_body(&self, method: &Method) -> bool {
        self.has_body_rules() && matches!(*method, Method::POST | Method::PUT | Method::PATCH)
    }

    /// Checks `when`, applies `query_set`, checks `query_allow` and the client's `fields`.
    /// Returns the query to forward.
    pub fn authorize(&self, root: &Root, input: &Input<'_>) -> Result<Query, Denial> {
        let forced = match self.judge_fast(input) {
            Some(judged) => judged?,
            None => root.with_scope(input, self.needs, None, |scope| self.judge(scope))?,
        };
        let mut query = input.query.clone();
        for (key, _) in &forced {
            query.remove_forced(key);
        }
        if let Some(allow) = &self.query_allow
            && let Some(bad) = query.first_disallowed(allow)
        {
            return Err(Denial::QueryNotAllowed {
                rule: self.name.clone(),
                key: bad.to_string(),
            });
        }
        for value in query.values("fields") {
            self.fields.check(value).map_err(|e| match e {
                FieldsError::Malformed(_) => Denial::FieldsMalformed {
                    rule: self.name.clone(),
                    error: e.to_string(),
                },
                FieldsError::NotAllowed(path) => Denial::FieldNotAllowed {
                    rule: self.name.clone(),
                    path,
                },
            })?;
        }
        for (key, value) in forced {
            query.push(key.clone(), value);
        }
        Ok(query)
    }

    /// [`Self::judge`] without an evaluation scope, when the rule forces no query value and
    /// its `when` is absent or answered by [`Expr::eval_fast`]; `None` otherwise.
    fn judge_fast(&self, input: &Input<'_>) -> Option<Result<Vec<(&String, String)>, Denial>> {
        if !self.query_set.is_empty() {
            return None;
        }
        match &self.when {
            None => Some(Ok(Vec::new())),
            Some(when) => Some(if when.eval_fast(input)? {
                Ok(Vec::new())
            } else {
                Err(Denial::ConditionFalse {
                    rule: self.name.clone(),
                })
            }),
        }
    }

    /// `when`, then the forced query values.
    fn judge(&self, scope: &cel::Context<'_, '_>) -> Result<Vec<(&String, String)>, Denial> {
        if let Some(when) = &self.when {
            match when.eval_bool(scope) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Denial::ConditionFalse {
                        rule: self.name.clone(),
                    });
                }
                Err(error) => {
                    return Err(Denial::ConditionError {
                        rule: self.name.clone(),
                        error,
                    });
                }
            }
        }
        let mut forced = Vec::with_capacity(self.query_set.len());
        for (key, e) in &self.query_set {
            let value = e
                .eval_query_value(scope)
                .map_err(|error| Denial::ForcedValue {
                    rule: self.name.clone(),
                    key: key.clone(),
                    error,
                })?;
            forced.push((key, value));
        }
        Ok(forced)
    }

    /// Applies `body_drop`/`body_allow`/`body_set` to a JSON object body.
    pub fn rewrite_body(
        &self,
        root: &Root,
        input: &Input<'_>,
        body: &[u8],
    ) -> Result<bytes::Bytes, BodyOutcome> {
        let set = root.with_scope(input, self.needs, None, |scope| {
            let mut set = Vec::with_capacity(self.body_set.len());
            for (key, e) in &self.body_set {
                let v = e.eval_json(scope).map_err(|error| {
                    BodyOutcome::Denied(Denial::ForcedValue {
                        rule: self.name.clone(),
                        key: key.clone(),
                        error,
                    })
                })?;
                set.push((key.clone(), v));
            }
            Ok(set)
        })?;
        body::rewrite(body, &self.body_drop, self.body_allow.as_deref(), &set).map_err(
            |e| match e {
                body::BodyError::NotJsonObject => BodyOutcome::Invalid(e.to_string()),
                body::BodyError::KeyNotAllowed(key) => {
                    BodyOutcome::Denied(Denial::BodyNotAllowed {
                        rule: self.name.clone(),
                        key,
                    })
                }
            },
        )
    }

    /// Evaluates `response_when` over a parsed JSON response.
    pub fn check_response(
        &self,
        root: &Root,
        input: &Input<'_>,
        response: &serde_json::Value,
    ) -> Result<(), Denial> {
        let Some(check) = &self.response_when else {
            return Ok(());
        };
        match root.with_scope(input, self.needs, Some(response), |scope| {
            check.eval_bool(scope)
        }) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Denial::ResponseFalse {
                rule: self.name.clone(),
            }),
            Err(error) => Err(Denial::ResponseError {
                rule: self.name.clone(),
                error,
            }),
        }
    }

    /// The precheck's read for this request: its path (rendered with the path parameters
    /// and the caller's claims) and query. `None` without a precheck; `Err` when the path
    /// names a claim the caller does not have.
    pub fn precheck_target<'a>(
        &'a self,
        params: &'a Params,
        claim: &dyn Fn(&str) -> Option<&'a str>,
    ) -> Option<Result<(String, Option<String>), Denial>> {
        let pc = self.precheck.as_ref()?;
        let query = pc.fields.as_ref().map(|f| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair("fields", f)
                .finish()
        });
        Some(match pc.path.render(params, claim) {
            Some(path) => Ok((path, query)),
            None => Err(Denial::PrecheckError {
                rule: self.name.clone(),
                error: "its path names a claim the token does not carry".into(),
            }),
        })
    }

    /// Evaluates the precheck's `when` over its read's JSON answer.
    pub fn check_precheck(
        &self,
        root: &Root,
        input: &Input<'_>,
        response: &serde_json::Value,
    ) -> Result<(), Denial> {
        let Some(pc) = &self.precheck else {
            return Ok(());
        };
        match root.with_scope(input, self.needs, Some(response), |scope| {
            pc.when.eval_bool(scope)
        }) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Denial::PrecheckFalse {
                rule: self.name.clone(),
            }),
            Err(error) => Err(Denial::PrecheckError {
                rule: self.name.clone(),
                error,
            }),
        }
    }

    /// The cache TTL for this rule, given `[cache].ttl`.
    pub fn cache_ttl(&self, default: Duration) -> Option<Duration> {
        match self.cache {
            CacheMode::Off => None,
            CacheMode::Default => Some(default),
            CacheMode::Ttl(t) => Some(t),
        }
    }
}

/// All rules, in file order, and the CEL root context they evaluate in.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
    root: Root,
}

impl RuleSet {
    /// Compiles every rule, collecting every problem. Names must be unique.
    pub fn compile(entries: &[Option<RuleEntry>], problems: &mut Vec<String>) -> Self {
        let mut rules: Vec<Arc<Rule>> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let label = match entry.name.as_deref() {
                Some(n) => format!("rule {n:?}"),
                None => format!("rule #{}", i + 1),
            };
            if let Some(n) = entry.name.as_deref()
                && entries[..i]
                    .iter()
                    .flatten()
                    .any(|e| e.name.as_deref() == Some(n))
            {
                problems.push(format!("{label}: duplicate rule name"));
            }
            if let Some(rule) = Rule::compile(entry, &label, problems) {
                rules.push(Arc::new(rule));
            }
        }
        Self {
            rules,
            root: Root::new(),
        }
    }

    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    pub fn rule(&self, index: usize) -> Option<&Rule> {
        self.rules.get(index).map(|r| &**r)
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// [`Self::find`], with the rule itself (shared) rather than its index.
    pub fn find_shared(
        &self,
        method: &Method,
        path: &canon::CanonPath,
    ) -> Option<(Arc<Rule>, Params)> {
        let (i, params) = self.find(method, path)?;
        self.rules.get(i).map(|r| (r.clone(), params))
    }

    /// The first rule whose methods and template match, with the captured parameters.
    pub fn find(&self, method: &Method, path: &canon::CanonPath) -> Option<(usize, Params)> {
        self.rules.iter().enumerate().find_map(|(i, r)| {
            if !r.methods.contains(method) {
                return None;
            }
            r.template.matches(path.segments()).map(|p| (i, p))
        })
    }
}

#[cfg(test)]
mod tests;
