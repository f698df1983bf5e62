//! CEL expressions of the rules, compiled once at load with the `cel` crate.
//!
//! # Cost model (measured by `benches/hot_path.rs`)
//! Building a root `cel::Context` costs ~30 µs (the function registry), so one root is built
//! per rule set and every evaluation runs in `root.new_inner_scope()` (~1 µs). The token's
//! claims are converted to a `cel::Value` once per verified token, not per rule.
//!
//! # Guarantees
//! - Only the variables `claims`, `path`, `query`, `method` (and `response` inside
//!   `response_when`) may be referenced; anything else is a load-time error, so a typo such as
//!   `claim.sub` fails `check` instead of denying every request at run time.
//! - An evaluation error (a missing claim, a type mismatch) is a *deny*, never an allow.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::Expr as Ast;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Program, Value};

use super::query::Query;
use super::template::Params;

/// Where an expression appears, which decides the variables it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Request,
    Response,
}

const REQUEST_VARS: &[&str] = &["claims", "path", "query", "method"];

/// A compiled expression with its source (for `explain` and errors).
pub struct Expr {
    source: String,
    program: Program,
    /// `a == b` / `a != b` over plain operands, answered without the interpreter.
    fast: Option<Compare>,
    pub(crate) uses_path: bool,
    pub(crate) uses_query: bool,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl Expr {
    /// Compiles `source`; `path_params` are the names the rule's template captures.
    pub fn compile(source: &str, site: Site, path_params: &[&str]) -> Result<Self, String> {
        let program = Program::compile(source).map_err(|e| {
            let msg = e.to_string();
            format!("CEL syntax error in {source:?}: {}", msg.trim())
        })?;
        let refs = program.references();
        let allowed =
            |v: &str| REQUEST_VARS.contains(&v) || (site == Site::Response && v == "response");
        let mut unknown: Vec<String> = refs
            .variables()
            .into_iter()
            .filter(|v| !allowed(v))
            .map(str::to_string)
            .collect();
        // Comprehension variables (`x` in `items.all(x, ...)`) appear as references too;
        // they are declared by the expression itself, so they are not unknown.
        let declared = comprehension_vars(program.expression());
        unknown.retain(|v| !declared.contains(v));
        if !unknown.is_empty() {
            unknown.sort();
            let known = if site == Site::Response {
                "claims, path, query, method, response"
            } else {
                "claims, path, query, method"
            };
            return Err(format!(
                "CEL expression {source:?} uses unknown variable(s) {} (available: {known})",
                unknown.join(", ")
            ));
        }
        let mut missing = Vec::new();
        selected_fields(program.expression(), "path", &mut missing);
        missing.retain(|f| !path_params.contains(&f.as_str()));
        if let Some(f) = missing.first() {
            return Err(format!(
                "CEL expression {source:?} reads path.{f}, but the path template has no {{{f}}}"
            ));
        }
        Ok(Self {
            source: source.to_string(),
            fast: Compare::recognise(program.expression()),
            uses_path: refs.has_variable("path"),
            uses_query: refs.has_variable("query"),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The value of a boolean condition without the interpreter, when the expression is a
    /// plain comparison of two strings (`path.uid == claims.sub`): CEL's `==` on two strings is
    /// byte equality, so the answer is the interpreter's. `None` — evaluate with CEL — for any
    /// other shape, or when an operand is missing or not a string (the interpreter then gives
    /// its own result or error, so denials keep their exact reasons).
    pub fn eval_fast(&self, input: &Input<'_>) -> Option<bool> {
        self.fast.as_ref()?.eval(input)
    }

    fn eval(&self, ctx: &Context<'_, '_>) -> Result<Value, String> {
        self.program.execute(ctx).map_err(|e| e.to_string())
    }

    /// Evaluates to a bool; anything else (or an error) is `Err`.
    pub fn eval_bool(&self, ctx: &Context<'_, '_>) -> Result<bool, String> {
        match self.eval(ctx)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("expected a bool, got {}", other.type_of())),
        }
    }

    /// Evaluates to a scalar rendered as a query value.
    pub fn eval_query_value(&self, ctx: &Context<'_, '_>) -> Result<String, String> {
        match self.eval(ctx)? {
            Value::String(s) => Ok(s.to_string()),
            Value::Int(i) => Ok(i.to_string()),
            Value::UInt(u) => Ok(u.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            other => Err(format!(
                "expected a string or number, got {}",
                other.type_of()
            )),
        }
    }

    /// Evaluates to any value, converted to JSON (for `body_set`).
    pub fn eval_json(&self, ctx: &Context<'_, '_>) -> Result<serde_json::Value, String> {
        let v = self.eval(ctx)?;
        v.json().map_err(|e| format!("value cannot be JSON: {e}"))
    }
}

fn comprehension_vars(e: &cel::IdedExpr) -> Vec<String> {
    let mut out = Vec::new();
    walk(e, &mut |x| {
        if let Ast::Comprehension(c) = &x.expr {
            out.push(c.iter_var.clone());
            out.extend(c.iter_var2.clone());
            out.push(c.accu_var.clone());
        }
    });
    out
}

fn selected_fields(e: &cel::IdedExpr, var: &str, out: &mut Vec<String>) {
    walk(e, &mut |x| {
        if let Ast::Select(s) = &x.expr
            && let Ast::Ident(name) = &s.operand.expr
            && name == var
        {
            out.push(s.field.clone());
        }
    });
}

fn walk(e: &cel::IdedExpr, f: &mut dyn FnMut(&cel::IdedExpr)) {
    f(e);
    match &e.expr {
        Ast::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, f);
            }
            for a in &c.args {
                walk(a, f);
            }
        }
        Ast::Comprehension(c) => {
            walk(&c.iter_range, f);
            walk(&c.accu_init, f);
            walk(&c.loop_cond, f);
            walk(&c.loop_step, f);
            walk(&c.result, f);
        }
        Ast::List(l) => {
            for x in &l.elements {
                walk(x, f);
            }
        }
        Ast::Map(m) => {
            for entry in &m.entries {
                if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                    walk(&me.key, f);
                    walk(&me.value, f);
                }
            }
        }
        Ast::Select(s) => walk(&s.operand, f),
        Ast::Struct(s) => {
            for entry in &s.entries {
                if let cel::common::ast::EntryExpr::StructField(sf) = &entry.expr {
                    walk(&sf.value, f);
                }
            }
        }
        Ast::Unspecified | Ast::Ident(_) | Ast::Literal(_) => {}
    }
}

/// The shared root context: the standard library, built once per rule set.
pub struct Root(Context<'static, 'static>);

impl Root {
    pub fn new() -> Self {
        Self(Context::default())
    }
}

impl Default for Root {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Root")
    }
}

/// A token's claims as a CEL value, converted once per verified token and then only borrowed
/// by evaluations (converting a map per request would cost more than the evaluation), plus
/// the top-level string claims for [`Expr::eval_fast`] (foldhash, not SipHash: the names come
/// from a verified token, and one is looked up on every request a rule compares a claim).
///
/// `sub`, when it is a string, is also held on its own: the rule every gateway has compares
/// it (`path.uid == claims.sub`), and reading it from the map touches four cold cache lines per
/// request (control bytes, bucket, key and value), where this one allocation is what
/// [`Principal::sub`] returns and the per-user limit has just hashed.
///
/// [`Principal::sub`]: crate::auth::Principal::sub
pub struct Claims(
    Box<dyn Val>,
    HashMap<String, String, foldhash::fast::RandomState>,
    Option<Arc<str>>,
);

impl Claims {
    pub fn from_json(claims: &serde_json::Value) -> Self {
        let strings = claims
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let sub = claims.get("sub").and_then(|s| s.as_str()).map(Arc::from);
        Self(to_val(claims), strings, sub)
    }

    /// The `sub` claim, if it is a string.
    pub fn sub(&self) -> Option<&Arc<str>> {
        self.2.as_ref()
    }

    /// A claim whose value is a string.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.1.get(name).map(String::as_str)
    }

    /// `{}`: the claims of an anonymous caller.
    pub fn empty() -> Self {
        Self::from_json(&serde_json::Value::Object(serde_json::Map::new()))
    }
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Claims are user data: keep them out of Debug output (and so out of logs).
        f.write_str("Claims(..)")
    }
}

fn to_val(v: &serde_json::Value) -> Box<dyn Val> {
    into_val(cel::to_value(v).unwrap_or(Value::Null))
}

fn into_val(value: Value) -> Box<dyn Val> {
    let boxed: Result<Box<dyn Val>, _> = value.try_into();
    boxed.unwrap_or_else(|_| Box::new(cel::common::types::CelNull))
}

fn string_map<'a>(pairs: impl Iterator<Item = (String, &'a str)>) -> Box<dyn Val> {
    let map: HashMap<String, Value> = pairs
        .map(|(k, v)| (k, Value::String(Arc::new(v.to_string()))))
        .collect();
    into_val(Value::from(map))
}

/// One side of a [`Compare`].
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `path.name`
    Path(String),
    /// `claims.name` or `claims['name']`, other than `sub`
    Claim(String),
    /// `claims.sub` or `claims['sub']`
    Sub,
    /// `method`
    Method,
    /// `'text'`
    Literal(String),
}

impl Operand {
    fn claim(name: &str) -> Self {
        if name == "sub" {
            Self::Sub
        } else {
            Self::Claim(name.to_owned())
        }
    }

    fn recognise(e: &cel::IdedExpr) -> Option<Self> {
        use cel::common::ast::LiteralValue;
        match &e.expr {
            Ast::Ident(name) if name == "method" => Some(Self::Method),
            Ast::Literal(LiteralValue::String(s)) => Some(Self::Literal(s.inner().to_string())),
            Ast::Select(s) if !s.test => match &s.operand.expr {
                Ast::Ident(v) if v == "path" => Some(Self::Path(s.field.clone())),
                Ast::Ident(v) if v == "claims" => Some(Self::claim(&s.field)),
                _ => None,
            },
            Ast::Call(c)
                if c.func_name == cel::common::ast::operators::INDEX
                    && c.target.is_none()
                    && c.args.len() == 2 =>
            {
                match (&c.args[0].expr, &c.args[1].expr) {
                    (Ast::Ident(v), Ast::Literal(LiteralValue::String(k))) if v == "claims" => {
                        Some(Self::claim(k.inner()))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The operand's string value, or `None` (missing, or not a string).
    fn value<'a>(&'a self, input: &'a Input<'_>) -> Option<&'a str> {
        match self {
            Self::Path(name) => input
                .params
                .iter()
                .find(|(k, _)| k.as_ref() == name)
                .map(|(_, v)| v.as_str()),
            Self::Claim(name) => input.claims.1.get(name).map(String::as_str),
            Self::Sub => input.claims.2.as_deref(),
            Self::Method => Some(input.method),
            Self::Literal(s) => Some(s),
        }
    }
}

/// `left == right` or `left != right`.
#[derive(Debug, Clone, PartialEq)]
struct Compare {
    left: Operand,
    right: Operand,
    negate: bool,
}

impl Compare {
    fn recognise(e: &cel::IdedExpr) -> Option<Self> {
        use cel::common::ast::operators::{EQUALS, NOT_EQUALS};
        let Ast::Call(c) = &e.expr else { return None };
        let negate = match c.func_name.as_str() {
            EQUALS => false,
            NOT_EQUALS => true,
            _ => return None,
        };
        if c.target.is_some() || c.args.len() != 2 {
            return None;
        }
        Some(Self {
            left: Operand::recognise(&c.args[0])?,
            right: Operand::recognise(&c.args[1])?,
            negate,
        })
    }

    fn eval(&self, input: &Input<'_>) -> Option<bool> {
        let equal = self.left.value(input)? == self.right.value(input)?;
        Some(equal != self.negate)
    }
}

/// The values a rule's expressions see for one request.
pub struct Input<'a> {
    pub claims: &'a Claims,
    pub params: &'a Params,
    pub query: &'a Query,
    pub method: &'a str,
}

/// The variables of one evaluation, lent to the interpreter without copies.
struct Vars<'a> {
    claims: &'a (dyn Val + 'static),
    method: Box<dyn Val>,
    path: Option<Box<dyn Val>>,
    query: Option<Box<dyn Val>>,
    response: Option<Box<dyn Val>>,
}

impl VariableResolver for Vars<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let v: &'b (dyn Val + 'static) = match variable {
            "claims" => self.claims,
            "method" => self.method.as_ref(),
            "path" => self.path.as_deref()?,
            "query" => self.query.as_deref()?,
            "response" => self.response.as_deref()?,
            _ => return None,
        };
        Some(CowVal::Borrowed(v))
    }
}

/// Which variables to build for an evaluation (the rest are never read).
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub path: bool,
    pub query: bool,
}

impl Root {
    /// Runs `f` in an evaluation scope for one request. `response` is bound as `response`.
    pub fn with_scope<R>(
        &self,
        input: &Input<'_>,
        needs: Needs,
        response: Option<&serde_json::Value>,
        f: impl FnOnce(&Context<'_, '_>) -> R,
    ) -> R {
        let vars = Vars {
            claims: input.claims.0.as_ref(),
            method: Box::new(cel::common::types::CelString::from(
                input.method.to_string(),
            )),
            path: needs.path.then(|| {
                string_map(
                    input
                        .params
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.as_str())),
                )
            }),
            query: needs.query.then(|| {
                let first = input.query.first_values_lowercase();
                let map: HashMap<String, Value> = first
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(Arc::new(v))))
                    .collect();
                into_val(Value::from(map))
            }),
            response: response.map(to_val),
        };
        let root: &Context<'_, '_> = &self.0;
        let mut ctx = root.new_inner_scope();
        ctx.set_variable_resolver(&vars);
        f(&ctx)
    }
}

/// Converts verified JSON claims for evaluation (done once per verified token).
pub fn claims_value(claims: &serde_json::Value) -> Claims {
    Claims::from_json(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_claims() -> Claims {
        claims_value(&serde_json::json!({
            "sub": "DQ2DyknW",
            "outseta:accountUid": "E9Ly3PWw",
            "outseta:isPrimary": "1",
            "exp": 1_900_000_000_i64
        }))
    }

    #[test]
    fn evaluates_request_conditions() {
        let root = Root::new();
        let claims = input_claims();
        let params: Params = vec![("uid".into(), "DQ2DyknW".into())];
        let query = Query::parse(Some("Fields=*"));
        let input = Input {
            claims: &claims,
            params: &params,
            query: &query,
            method: "GET",
        };
        root.with_scope(&input, Needs { path: true, query: true }, None, |ctx| {
        let e = Expr::compile(
            "path.uid == claims.sub && claims['outseta:isPrimary'] == '1' && query.fields == '*' && method == 'GET'",
            Site::Request,
            &["uid"],
        )
        .unwrap();
        assert_eq!(e.eval_bool(ctx), Ok(true));
        let e = Expr::compile("claims['outseta:planUid'] == 'x'", Site::Request, &[]).unwrap();
        assert!(
            e.eval_bool(ctx).is_err(),
            "missing claim is an error, i.e. deny"
        );
        let e = Expr::compile("claims['outseta:accountUid']", Site::Request, &[]).unwrap();
        assert_eq!(e.eval_query_value(ctx).as_deref(), Ok("E9Ly3PWw"));
        let e = Expr::compile("{'Uid': claims.sub}", Site::Request, &[]).unwrap();
        assert_eq!(
            e.eval_json(ctx),
            Ok(serde_json::json!({"Uid": "DQ2DyknW"}))
        );
        });
    }

    #[test]
    fn the_fast_path_agrees_with_the_interpreter() {
        let root = Root::new();
        // `sub` a string (read from its own field), then a number (no string to compare).
        let claim_sets = [
            claims_value(&serde_json::json!({
                "sub": "DQ2DyknW",
                "outseta:accountUid": "E9Ly3PWw",
                "n": 7,
                "empty": ""
            })),
            claims_value(&serde_json::json!({"sub": 7, "outseta:accountUid": "E9Ly3PWw"})),
        ];
        let query = Query::parse(None);
        let exprs = [
            ("path.uid == claims.sub", true),
            ("path.uid == claims['sub']", true),
            ("claims['sub'] != 'DQ2DyknW'", true),
            ("claims.sub == path.uid", true),
            ("path.uid != claims.sub", true),
            ("path.uid == claims['outseta:accountUid']", true),
            ("claims['outseta:accountUid'] == 'E9Ly3PWw'", true),
            ("method == 'GET'", true),
            ("method != 'GET'", true),
            ("'a' == 'a'", true),
            ("path.uid == claims.missing", true),
            ("path.uid == claims.n", true),
            ("claims.empty == ''", true),
            ("has(claims.sub)", false),
            ("path.uid == claims.sub && method == 'GET'", false),
            ("claims.n == 7", false),
            ("path.uid == claims.sub.x", false),
        ];
        for (claims, uid) in claim_sets
            .iter()
            .flat_map(|c| ["DQ2DyknW", "E9Ly3PWw", "dq2dyknw", "", "DQ2DyknW\u{0}"].map(|u| (c, u)))
        {
            for method in ["GET", "PUT"] {
                let params: Params = vec![("uid".into(), uid.to_string())];
                let input = Input {
                    claims,
                    params: &params,
                    query: &query,
                    method,
                };
                for (src, recognised) in exprs {
                    let e = Expr::compile(src, Site::Request, &["uid"]).unwrap();
                    assert_eq!(e.fast.is_some(), recognised, "{src}");
                    let slow = root.with_scope(
                        &input,
                        Needs {
                            path: true,
                            query: true,
                        },
                        None,
                        |ctx| e.eval_bool(ctx),
                    );
                    match e.eval_fast(&input) {
                        Some(fast) => assert_eq!(Ok(fast), slow, "{src} with uid {uid:?}"),
                        // Declined: a missing or non-string operand (or another shape).
                        None => assert!(
                            !recognised
                                || src.contains("missing")
                                || src.contains("claims.n")
                                || (claims.sub().is_none() && src.contains("sub"))
                                || slow.is_err(),
                            "{src} declined with uid {uid:?}"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_unknown_variables_and_params() {
        let err = Expr::compile("claim.sub == 'x'", Site::Request, &[]).unwrap_err();
        assert!(err.contains("unknown variable(s) claim"), "{err}");
        let err = Expr::compile("response.Uid == claims.sub", Site::Request, &[]).unwrap_err();
        assert!(err.contains("response"), "{err}");
        assert!(Expr::compile("response.Uid == claims.sub", Site::Response, &[]).is_ok());
        let err = Expr::compile("path.id == claims.sub", Site::Request, &["uid"]).unwrap_err();
        assert!(err.contains("path.id"), "{err}");
        assert!(Expr::compile("path.uid ==", Site::Request, &["uid"]).is_err());
        assert!(
            Expr::compile(
                "response.items.all(i, i.Uid == claims.sub)",
                Site::Response,
                &[]
            )
            .is_ok()
        );
    }
}
