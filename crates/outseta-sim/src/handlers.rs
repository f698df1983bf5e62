//! Endpoint handlers. Each runs synchronously under one short store lock and returns the
//! finished response; authentication and rate limiting happened before (see `service`).
//!
//! # Guarantees
//! - Lists use Outseta's wrapper and conventions ([`super::query`]); single objects and
//!   write results are rendered with the request's `fields` (default `*,*.*`).
//! - Bearer callers of the two scoped lists see only their own data, as Outseta documents:
//!   subscriptions of every account they belong to; invoices of the accounts they are the
//!   primary contact of.
//! - Writes return the fresh entity; a later GET sees the change.

use std::collections::HashSet;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use super::State;
use super::model::{Entity, Kind};
use super::query::{self, ListQuery, Params};
use super::render::render;
use super::respond;
use super::routes::RouteId;
use super::store::Store;
use super::tokens::{self, GrantError, TokenRequest};
use super::writes::{self, WriteError};
use crate::body::Body;

/// Who is calling, after authentication.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    ApiKey,
    /// A verified bearer token's claims.
    User(Map<String, Value>),
}

impl Caller {
    fn sub(&self) -> Option<&str> {
        match self {
            Caller::User(c) => c.get("sub").and_then(Value::as_str),
            _ => None,
        }
    }
}

/// One request, as the handlers see it.
pub struct Call<'a> {
    pub route: RouteId,
    pub method: &'a str,
    /// The path's `{param}` captures, in template order.
    pub captures: &'a [String],
    pub params: Params,
    pub caller: Caller,
    pub content_type: Option<&'a str>,
    pub body: Bytes,
}

pub fn dispatch(state: &State, call: &Call<'_>) -> Response<Body> {
    let uid = call.captures.first().map_or("", String::as_str);
    match (call.route, call.method) {
        (RouteId::Jwks, _) => jwks(state),
        (RouteId::Tokens, _) => token(state, call),
        (RouteId::Profile, "GET") => match call.caller.sub() {
            Some(sub) => get(state, Kind::Person, sub, &call.params),
            None => respond::unauthorized(),
        },
        (RouteId::Profile, _) => match call.caller.sub() {
            Some(sub) => update(state, Kind::Person, sub, call),
            None => respond::unauthorized(),
        },
        (RouteId::ProfilePassword, _) => password(state, call),
        (RouteId::People, _) => list(state, Kind::Person, &call.params, |_| true),
        (RouteId::Person, "PUT") => update(state, Kind::Person, uid, call),
        (RouteId::Person, _) => get(state, Kind::Person, uid, &call.params),
        (RouteId::Accounts, _) => list(state, Kind::Account, &call.params, |_| true),
        (RouteId::Account, "PUT") => update(state, Kind::Account, uid, call),
        (RouteId::Account, _) => get(state, Kind::Account, uid, &call.params),
        (RouteId::Plans, _) => list(state, Kind::Plan, &call.params, |_| true),
        (RouteId::Plan, _) => get(state, Kind::Plan, uid, &call.params),
        (RouteId::PlanFamilies, _) => list(state, Kind::PlanFamily, &call.params, |_| true),
        (RouteId::PlanFamily, _) => get(state, Kind::PlanFamily, uid, &call.params),
        (RouteId::Subscriptions, _) => scoped_list(state, Kind::Subscription, call),
        (RouteId::Subscription, _) => get(state, Kind::Subscription, uid, &call.params),
        (RouteId::Invoices, _) => scoped_list(state, Kind::Invoice, call),
        (RouteId::Invoice, _) => get(state, Kind::Invoice, uid, &call.params),
        (RouteId::Transactions, _) => list(state, Kind::Transaction, &call.params, |e| {
            e.one("Account") == Some(uid)
        }),
        (RouteId::Cases, "POST") => create_case(state, call),
        (RouteId::Cases, _) => list(state, Kind::Case, &call.params, |_| true),
        (RouteId::Case, _) => get(state, Kind::Case, uid, &call.params),
        (RouteId::CaseClientResponse, _) => {
            let comment = call.captures.get(1).map_or("", String::as_str);
            client_response(state, uid, comment, call)
        }
    }
}

fn jwks(state: &State) -> Response<Body> {
    let mut rsp = Response::new(crate::body::full(state.signer.jwks_json().to_owned()));
    rsp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    rsp
}

fn token(state: &State, call: &Call<'_>) -> Response<Body> {
    let req = TokenRequest::parse(call.content_type, &call.body);
    let impersonate = matches!(call.caller, Caller::ApiKey);
    let store = state.read();
    match tokens::grant(&store, &state.signer, &state.host, &req, impersonate) {
        Ok(v) => respond::ok(&v),
        Err(GrantError::InvalidGrant) => respond::text(StatusCode::BAD_REQUEST, "invalid_grant"),
        Err(GrantError::UnsupportedGrantType) => {
            respond::text(StatusCode::BAD_REQUEST, "unsupported_grant_type")
        }
        Err(GrantError::Sign) => {
            respond::message(StatusCode::INTERNAL_SERVER_ERROR, "An error has occurred.")
        }
    }
}

fn list(
    state: &State,
    kind: Kind,
    params: &Params,
    keep: impl Fn(&Entity) -> bool,
) -> Response<Body> {
    let store = state.read();
    let base = store.all(kind).into_iter().filter(|e| keep(e)).collect();
    list_of(&store, kind, base, params)
}

fn list_of(store: &Store, kind: Kind, base: Vec<&Entity>, params: &Params) -> Response<Body> {
    let q = match ListQuery::parse(params, kind) {
        Ok(q) => q,
        Err(e) => return respond::bad_request(e.to_string()),
    };
    let (total, page) = query::apply(store, base, &q);
    let items = page.iter().map(|e| render(store, e, &q.fields)).collect();
    respond::list(q.limit, q.offset, total, items)
}

/// Account Uids a person belongs to (all memberships, or primary ones only).
fn accounts_of(store: &Store, person_uid: &str, primary_only: bool) -> HashSet<String> {
    store
        .get_kind(Kind::Person, person_uid)
        .map(|p| {
            p.many("PersonAccount")
                .iter()
                .filter_map(|m| store.get_kind(Kind::PersonAccount, m))
                .filter(|m| !primary_only || m.value("IsPrimary") == &Value::Bool(true))
                .filter_map(|m| m.one("Account").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn scoped_list(state: &State, kind: Kind, call: &Call<'_>) -> Response<Body> {
    let store = state.read();
    let all = store.all(kind);
    let base = match call.caller.sub() {
        None => all,
        Some(sub) => {
            // Subscriptions: accounts the person is related to; invoices: accounts they are
            // the primary contact of.
            let invoices = kind == Kind::Invoice;
            let accounts = accounts_of(&store, sub, invoices);
            all.into_iter()
                .filter(|e| {
                    let sub_entity = if invoices {
                        e.one("Subscription")
                            .and_then(|s| store.get_kind(Kind::Subscription, s))
                    } else {
                        Some(*e)
                    };
                    sub_entity
                        .and_then(|s| s.one("Account"))
                        .is_some_and(|a| accounts.contains(a))
                })
                .collect()
        }
    };
    list_of(&store, kind, base, &call.params)
}

fn get(state: &State, kind: Kind, uid: &str, params: &Params) -> Response<Body> {
    let store = state.read();
    match store.get_kind(kind, uid) {
        Some(e) => respond::ok(&render(&store, e, &query::fields_of(params))),
        None => respond::entity_not_found(kind.name(), uid),
    }
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
}

fn invalid_body() -> Response<Body> {
    respond::bad_request("The request is invalid.")
}

fn write_error(store: &Store, kind: Kind, uid: &str, e: WriteError) -> Response<Body> {
    match e {
        WriteError::NotFound => respond::entity_not_found(kind.name(), uid),
        WriteError::Invalid(entity, errors) => {
            let shown = render(store, &entity, &query::Fields::default_selection());
            let mut shown = shown;
            if let Value::Object(m) = &mut shown {
                m.remove("_objectType");
            }
            respond::validation(entity.kind.name(), shown, &errors)
        }
    }
}

fn update(state: &State, kind: Kind, uid: &str, call: &Call<'_>) -> Response<Body> {
    let Some(patch) = json_object(&call.body) else {
        return invalid_body();
    };
    let mut store = state.write();
    match writes::update(&mut store, kind, uid, &patch) {
        Ok(()) => match store.get_kind(kind, uid) {
            Some(e) => respond::ok(&render(&store, e, &query::fields_of(&call.params))),
            None => respond::entity_not_found(kind.name(), uid),
        },
        Err(e) => write_error(&store, kind, uid, e),
    }
}

fn password(state: &State, call: &Call<'_>) -> Response<Body> {
    let Some(sub) = call.caller.sub() else {
        return respond::unauthorized();
    };
    let Some(body) = json_object(&call.body) else {
        return invalid_body();
    };
    let mut store = state.write();
    match writes::change_password(&mut store, sub, &body) {
        Ok(()) => respond::empty_ok(),
        Err(e) => write_error(&store, Kind::Person, sub, e),
    }
}

/// A reply from the person who opened the case, the comment in the path; answers the case.
fn client_response(state: &State, uid: &str, comment: &str, call: &Call<'_>) -> Response<Body> {
    let mut store = state.write();
    match writes::client_response(&mut store, uid, comment) {
        Ok(()) => match store.get_kind(Kind::Case, uid) {
            Some(e) => respond::ok(&render(&store, e, &query::fields_of(&call.params))),
            None => respond::entity_not_found("Case", uid),
        },
        Err(e) => write_error(&store, Kind::Case, uid, e),
    }
}

fn create_case(state: &State, call: &Call<'_>) -> Response<Body> {
    let Some(body) = json_object(&call.body) else {
        return invalid_body();
    };
    let mut store = state.write();
    match writes::create_case(&mut store, &body) {
        Ok(uid) => match store.get_kind(Kind::Case, &uid) {
            Some(e) => respond::ok(&render(&store, e, &query::fields_of(&call.params))),
            None => respond::entity_not_found("Case", &uid),
        },
        Err(e) => write_error(&store, Kind::Case, "", e),
    }
}
