//! Outseta's list conventions: query parameters bound the ASP.NET way, `fields` selection,
//! exact and operator filters on dotted paths, `orderBy`, and page-index paging.
//!
//! # Guarantees
//! - Query keys are case-insensitive; repeated keys (in any case) are joined with `,`, as an
//!   ASP.NET `NameValueCollection` reads them (`a=1&A=2` reads as `"1,2"`).
//! - `fields` absent means `*,*.*`: the main object and its immediate child objects, deeper
//!   references `null`. `*` selects every scalar; `X.*`/`X.Y` expand a reference.
//! - `offset` is a zero-based page index; `limit` defaults to 25 and is capped at 100, or at
//!   25 when the selected fields expand child objects (the default does).
//! - Filters apply to any property path, references included (`Account.Uid`,
//!   `FromPerson.Email`, `Account.PersonAccount.Person.Uid`); a path through a list matches if
//!   any element matches. Uids compare exactly, other strings case-insensitively (SQL Server's
//!   default collation); `*x`, `x*`, `*x*` are ends-with/starts-with/contains. Operators:
//!   `__gt`, `__gte`, `__lt`, `__lte`, `__ne`, `__isnull`. A key that names no property of
//!   the entity is ignored, as are Outseta's non-filter parameters (`q`, `donotlog`, ...).

use std::cmp::Ordering;

use serde_json::Value;

use super::model::{Entity, Kind, Prop};
use super::store::Store;

pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 100;
pub const MAX_LIMIT_WITH_CHILDREN: usize = 25;

/// Parameters that are never filters (lower case).
const RESERVED: &[&str] = &[
    "fields",
    "limit",
    "offset",
    "orderby",
    "q",
    "donotlog",
    "segmentuid",
    "taguid",
    "isimported",
    "sendwelcomeemail",
    "sendconfirmationemail",
    "sendautoresponder",
    "startimmediately",
    "asof",
    "excludeinvoiceuid",
    "personuid",
    "_",
];

/// Query parameters, keys case-insensitive, duplicates joined with `,`.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if k.is_empty() {
                continue;
            }
            match pairs.iter_mut().find(|(pk, _)| pk.eq_ignore_ascii_case(&k)) {
                Some((_, pv)) => {
                    pv.push(',');
                    pv.push_str(&v);
                }
                None => pairs.push((k.into_owned(), v.into_owned())),
            }
        }
        Self { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A `fields` selection tree. Names are kept lower-case.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    /// `*` at this level: every scalar; unselected references render as `null`.
    pub star: bool,
    children: Vec<(String, Fields)>,
    /// `*.<rest>`: applies to every reference at this level.
    any: Option<Box<Fields>>,
}

impl Fields {
    /// Outseta's default: `*,*.*`.
    pub fn default_selection() -> Self {
        Self {
            star: true,
            children: Vec::new(),
            any: Some(Box::new(Self::star())),
        }
    }

    pub fn star() -> Self {
        Self {
            star: true,
            ..Self::default()
        }
    }

    pub fn parse(spec: &str) -> Self {
        let mut root = Self::default();
        for path in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut node = &mut root;
            let segs: Vec<&str> = path.split('.').map(str::trim).collect();
            for (i, seg) in segs.iter().enumerate() {
                let last = i + 1 == segs.len();
                if *seg == "*" {
                    if last {
                        node.star = true;
                        break;
                    }
                    node = node.any.get_or_insert_with(Box::default);
                    continue;
                }
                if seg.is_empty() {
                    break;
                }
                let name = seg.to_ascii_lowercase();
                let idx = match node.children.iter().position(|(n, _)| *n == name) {
                    Some(i) => i,
                    None => {
                        node.children.push((name, Self::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[idx].1;
            }
        }
        root
    }

    /// The selection for property `name`, if it is selected by name.
    pub fn child(&self, name: &str) -> Option<&Fields> {
        self.children
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, f)| f)
    }

    /// The selection under which reference `name` is expanded, if any.
    pub fn expansion(&self, name: &str) -> Option<&Fields> {
        self.child(name).or(self.any.as_deref())
    }

    /// A bare leaf (`fields=Account`): nothing below was named.
    pub fn is_leaf(&self) -> bool {
        !self.star && self.children.is_empty() && self.any.is_none()
    }

    /// Whether this selection expands any child object of `kind` (the 25-item cap applies).
    pub fn expands_children(&self, kind: Kind) -> bool {
        if self.any.is_some() {
            return kind.props().any(|(_, p)| p != Prop::Scalar);
        }
        self.children
            .iter()
            .any(|(n, _)| matches!(kind.prop(n), Some((_, Prop::One(_) | Prop::Many(_)))))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    IsNull,
}

const OPS: &[(&str, Op)] = &[
    ("__gte", Op::Gte),
    ("__gt", Op::Gt),
    ("__lte", Op::Lte),
    ("__lt", Op::Lt),
    ("__ne", Op::Ne),
    ("__isnull", Op::IsNull),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub path: Vec<String>,
    pub op: Op,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The request is invalid: '{0}' must be an integer.")]
pub struct QueryError(pub &'static str);

/// Everything a list endpoint reads from the query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub fields: Fields,
    pub limit: usize,
    pub offset: usize,
    pub order: Option<(Vec<String>, bool)>,
    pub filters: Vec<Filter>,
}

fn parse_int(params: &Params, key: &'static str) -> Result<Option<i64>, QueryError> {
    match params.get(key).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| QueryError(key)),
    }
}

/// The `fields` selection of a request (default when absent or empty).
pub fn fields_of(params: &Params) -> Fields {
    match params.get("fields").map(str::trim) {
        Some(s) if !s.is_empty() => Fields::parse(s),
        _ => Fields::default_selection(),
    }
}

impl ListQuery {
    pub fn parse(params: &Params, kind: Kind) -> Result<Self, QueryError> {
        let fields = fields_of(params);
        let cap = if fields.expands_children(kind) {
            MAX_LIMIT_WITH_CHILDREN
        } else {
            MAX_LIMIT
        };
        let limit = match parse_int(params, "limit")? {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(cap).min(cap),
            _ => DEFAULT_LIMIT.min(cap),
        };
        let offset = parse_int(params, "offset")?
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let order = params.get("orderBy").and_then(|o| {
            let mut words = o.split_whitespace();
            let path = split_path(words.next()?);
            let desc = words.next().is_some_and(|w| w.eq_ignore_ascii_case("desc"));
            known_path(kind, &path).then_some((path, desc))
        });
        let mut filters = Vec::new();
        for (key, value) in params.iter() {
            let lower = key.to_ascii_lowercase();
            if RESERVED.contains(&lower.as_str()) {
                continue;
            }
            let (name, op) = OPS
                .iter()
                .find(|(suffix, _)| lower.ends_with(suffix))
                .map(|(suffix, op)| (&key[..key.len() - suffix.len()], *op))
                .unwrap_or((key, Op::Eq));
            let path = split_path(name);
            if known_path(kind, &path) {
                filters.push(Filter {
                    path,
                    op,
                    value: value.to_owned(),
                });
            }
        }
        Ok(Self {
            fields,
            limit,
            offset,
            order,
            filters,
        })
    }
}

fn split_path(s: &str) -> Vec<String> {
    s.split('.').map(|p| p.trim().to_owned()).collect()
}

/// Whether `path` names a scalar reachable from `kind` (through references or into a value
/// object such as `MailingAddress.City`).
fn known_path(kind: Kind, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match kind.prop(first) {
        Some((_, Prop::Scalar)) => rest.iter().all(|s| !s.is_empty()),
        Some((_, Prop::One(k) | Prop::Many(k))) => !rest.is_empty() && known_path(k, rest),
        None => false,
    }
}

/// Every value reachable by `path` from `e` (several through lists; none through nulls).
pub fn resolve<'a>(store: &'a Store, e: &'a Entity, path: &[String], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match e.kind.prop(first) {
        Some((name, Prop::Scalar)) => {
            let mut v = e.value(name);
            for seg in rest {
                match v
                    .as_object()
                    .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(seg)))
                {
                    Some((_, inner)) => v = inner,
                    None => return,
                }
            }
            out.push(v);
        }
        Some((name, Prop::One(k))) => {
            if let Some(t) = e.one(name).and_then(|u| store.get_kind(k, u)) {
                resolve(store, t, rest, out);
            }
        }
        Some((name, Prop::Many(k))) => {
            for t in e.many(name).iter().filter_map(|u| store.get_kind(k, u)) {
                resolve(store, t, rest, out);
            }
        }
        None => {}
    }
}

fn is_uid_path(path: &[String]) -> bool {
    path.last().is_some_and(|l| l.eq_ignore_ascii_case("uid"))
}

fn str_eq(have: &str, want: &str, exact_case: bool) -> bool {
    let (h, w) = if exact_case {
        (have.to_owned(), want.to_owned())
    } else {
        (have.to_lowercase(), want.to_lowercase())
    };
    let starts = w.starts_with('*');
    let ends = w.ends_with('*') && w.len() > 1;
    let core = w.trim_matches('*');
    match (starts, ends) {
        (true, true) => h.contains(core),
        (true, false) => h.ends_with(core),
        (false, true) => h.starts_with(core),
        (false, false) => h == w,
    }
}

fn equals(v: &Value, want: &str, exact_case: bool) -> bool {
    match v {
        Value::String(s) => str_eq(s, want, exact_case),
        Value::Number(n) => match (n.as_f64(), want.trim().parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Bool(b) => want
            .trim()
            .eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        _ => false,
    }
}

fn compare(v: &Value, want: &str) -> Option<Ordering> {
    match v {
        Value::Number(n) => n.as_f64()?.partial_cmp(&want.trim().parse::<f64>().ok()?),
        Value::String(s) => Some(s.to_lowercase().as_str().cmp(want.to_lowercase().as_str())),
        _ => None,
    }
}

impl Filter {
    pub fn matches(&self, store: &Store, e: &Entity) -> bool {
        let mut values = Vec::new();
        resolve(store, e, &self.path, &mut values);
        let exact = is_uid_path(&self.path);
        match self.op {
            Op::IsNull => {
                let all_null = values.iter().all(|v| v.is_null());
                match self.value.trim().to_ascii_lowercase().as_str() {
                    "true" => all_null,
                    "false" => !all_null,
                    _ => false,
                }
            }
            Op::Eq => values.iter().any(|v| equals(v, &self.value, exact)),
            Op::Ne => values.iter().all(|v| !equals(v, &self.value, exact)),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => values.iter().any(|v| {
                compare(v, &self.value).is_some_and(|o| match self.op {
                    Op::Gt => o == Ordering::Greater,
                    Op::Gte => o != Ordering::Less,
                    Op::Lt => o == Ordering::Less,
                    _ => o != Ordering::Greater,
                })
            }),
        }
    }
}

fn order_key(store: &Store, e: &Entity, path: &[String]) -> Value {
    let mut values = Vec::new();
    resolve(store, e, path, &mut values);
    values.first().map(|v| (*v).clone()).unwrap_or(Value::Null)
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Filters, orders and pages `items`; returns the total before paging and the page.
pub fn apply<'a>(
    store: &'a Store,
    items: Vec<&'a Entity>,
    q: &ListQuery,
) -> (usize, Vec<&'a Entity>) {
    let mut hits: Vec<&Entity> = items
        .into_iter()
        .filter(|e| q.filters.iter().all(|f| f.matches(store, e)))
        .collect();
    if let Some((path, desc)) = &q.order {
        let mut keyed: Vec<(Value, &Entity)> = hits
            .into_iter()
            .map(|e| (order_key(store, e, path), e))
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            let o = cmp_values(a, b);
            if *desc { o.reverse() } else { o }
        });
        hits = keyed.into_iter().map(|(_, e)| e).collect();
    }
    let total = hits.len();
    let start = q.offset.saturating_mul(q.limit);
    let page = hits.into_iter().skip(start).take(q.limit).collect();
    (total, page)
}

#[cfg(test)]
mod tests;
