//! May this upstream answer be stored? Status, `Cache-Control`, `Vary`, `Content-Encoding`.
//!
//! - Only 200.
//! - `Cache-Control: no-store` or `private` (qualified or not) prevents storing.
//!   Other directives (`max-age`, `no-cache`, …) are not consulted: the rule's `cache` ttl is
//!   the operator's decision, and the gateway never revalidates.
//! - `Vary: *`, or `Vary` naming a request header other than `Accept-Encoding` (the forwarder
//!   always asks for identity on cacheable rules) or `Origin` (CORS is answered by the gateway,
//!   not taken from Outseta), prevents storing: the key does not cover request headers.
//! - A body with a `Content-Encoding` other than `identity` is not stored.

use http::{HeaderMap, StatusCode, header};

use super::status::BypassReason;

/// `Ok(())` if an answer with this status and these headers may be stored.
pub fn storable(status: StatusCode, headers: &HeaderMap) -> Result<(), BypassReason> {
    if status != StatusCode::OK {
        return Err(BypassReason::Status);
    }
    if forbids_storing(headers) {
        return Err(BypassReason::NoStore);
    }
    if varies(headers) {
        return Err(BypassReason::Vary);
    }
    if encoded(headers) {
        return Err(BypassReason::Encoded);
    }
    Ok(())
}

/// Elements of every field line of `name`, split on commas and trimmed.
fn elements(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
}

/// `no-store` or `private` in `Cache-Control`. Quoted commas inside a `private="a, b"`
/// argument can only produce extra fragments, never hide the directive itself.
pub fn forbids_storing(headers: &HeaderMap) -> bool {
    elements(headers, header::CACHE_CONTROL).any(|d| {
        let name = match d.iter().position(|b| *b == b'=') {
            Some(i) => d[..i].trim_ascii(),
            None => d,
        };
        name.eq_ignore_ascii_case(b"no-store") || name.eq_ignore_ascii_case(b"private")
    })
}

fn varies(headers: &HeaderMap) -> bool {
    elements(headers, header::VARY)
        .any(|v| !(v.eq_ignore_ascii_case(b"accept-encoding") || v.eq_ignore_ascii_case(b"origin")))
}

fn encoded(headers: &HeaderMap) -> bool {
    elements(headers, header::CONTENT_ENCODING).any(|v| !v.eq_ignore_ascii_case(b"identity"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cache_control_directives() {
        let ok = |v: &'static str| storable(StatusCode::OK, &with(&[("cache-control", v)]));
        assert_eq!(ok("max-age=60, public"), Ok(()));
        assert_eq!(ok("no-cache"), Ok(()), "not consulted: the rule decides");
        assert_eq!(ok("No-Store"), Err(BypassReason::NoStore));
        assert_eq!(ok("max-age=0,no-store"), Err(BypassReason::NoStore));
        assert_eq!(ok("private"), Err(BypassReason::NoStore));
        assert_eq!(
            ok("private=\"Set-Cookie, X-A\", max-age=5"),
            Err(BypassReason::NoStore)
        );
        assert_eq!(ok("x-no-store-ish"), Ok(()));
        // Several field lines are one list.
        let h = with(&[("cache-control", "max-age=5"), ("cache-control", "private")]);
        assert_eq!(storable(StatusCode::OK, &h), Err(BypassReason::NoStore));
    }

    #[test]
    fn status_vary_and_encoding() {
        assert_eq!(
            storable(StatusCode::NOT_FOUND, &HeaderMap::new()),
            Err(BypassReason::Status)
        );
        assert_eq!(
            storable(StatusCode::NO_CONTENT, &HeaderMap::new()),
            Err(BypassReason::Status)
        );
        let ok = |k: &'static str, v: &'static str| storable(StatusCode::OK, &with(&[(k, v)]));
        assert_eq!(ok("vary", "Accept-Encoding, Origin"), Ok(()));
        assert_eq!(ok("vary", "*"), Err(BypassReason::Vary));
        assert_eq!(
            ok("vary", "origin, accept-language"),
            Err(BypassReason::Vary)
        );
        assert_eq!(ok("content-encoding", "identity"), Ok(()));
        assert_eq!(ok("content-encoding", "gzip"), Err(BypassReason::Encoded));
    }
}
