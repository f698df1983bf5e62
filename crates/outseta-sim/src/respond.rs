//! Response builders in Outseta's shapes.
//!
//! # Guarantees
//! - JSON bodies carry `Content-Type: application/json; charset=utf-8`.
//! - Lists are `{"metadata": {"limit", "offset", "total"}, "items": [...]}`.
//! - Validation failures are 400 `{"ErrorMessage", "EntityValidationErrors": [{"Entity",
//!   "TypeName", "ValidationErrors": [{"ErrorCode", "ErrorMessage", "PropertyName"}]}]}`.
//! - Framework-level errors (401, 404, 405, 429, 500) use ASP.NET's `{"Message": "..."}`.

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use super::writes::FieldError;
use crate::body::{self, Body};

pub fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut rsp = Response::new(body::full(bytes));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    rsp
}

pub fn ok(v: &Value) -> Response<Body> {
    json(StatusCode::OK, v)
}

pub fn list(limit: usize, offset: usize, total: usize, items: Vec<Value>) -> Response<Body> {
    ok(&json!({
        "metadata": {"limit": limit, "offset": offset, "total": total},
        "items": items,
    }))
}

/// A plain-text body (the token endpoint's `invalid_grant`).
pub fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    let mut rsp = Response::new(body::full(s));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}

/// 200 with an empty body (`PUT /profile/password`).
pub fn empty_ok() -> Response<Body> {
    Response::new(body::empty())
}

pub fn message(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    json(status, &json!({ "Message": msg.into() }))
}

pub fn unauthorized() -> Response<Body> {
    message(
        StatusCode::UNAUTHORIZED,
        "Authorization has been denied for this request.",
    )
}

pub fn not_found(path: &str) -> Response<Body> {
    message(
        StatusCode::NOT_FOUND,
        format!("No HTTP resource was found that matches the request URI '{path}'."),
    )
}

pub fn entity_not_found(type_name: &str, uid: &str) -> Response<Body> {
    message(
        StatusCode::NOT_FOUND,
        format!("No {type_name} was found with Uid '{uid}'."),
    )
}

pub fn method_not_allowed(method: &str) -> Response<Body> {
    message(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("The requested resource does not support http method '{method}'."),
    )
}

pub fn bad_request(msg: impl Into<String>) -> Response<Body> {
    message(StatusCode::BAD_REQUEST, msg)
}

pub fn too_many_requests() -> Response<Body> {
    message(
        StatusCode::TOO_MANY_REQUESTS,
        "API rate limit exceeded. Requests authorized by an API key should not exceed the allowed rate.",
    )
}

pub fn validation(type_name: &str, entity: Value, errors: &[FieldError]) -> Response<Body> {
    let errs: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({
                "ErrorCode": e.code,
                "ErrorMessage": e.message,
                "PropertyName": e.property,
            })
        })
        .collect();
    json(
        StatusCode::BAD_REQUEST,
        &json!({
            "ErrorMessage": "Validation failed for one or more entities. See 'EntityValidationErrors' property for more details.",
            "EntityValidationErrors": [{
                "Entity": entity,
                "TypeName": type_name,
                "ValidationErrors": errs,
            }],
        }),
    )
}
