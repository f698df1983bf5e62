//! Header hygiene between the client and Outseta.
//!
//! # Guarantees
//! - Upstream requests carry only the client headers named in `[outseta] forward_headers`
//!   (an allow-list, compared case-insensitively) and, when the body is forwarded as sent,
//!   its `Content-Length`; everything else — method overrides, URL rewrites, client-IP claims,
//!   `Range`, `If-*`, `Cache-Control`, `Expect`, cookies, the client's `Authorization` — is
//!   dropped. The forwarder sets the request id and the rule's credential after this.
//! - On a cacheable rule only the trace headers ([`TRACE_HEADERS`]) of the list travel, so
//!   every caller's request for one cache key is the same upstream request.
//! - [`refused_forward_header`] names the headers the list may never contain; config
//!   validation refuses them.
//! - Responses lose hop-by-hop headers and `Set-Cookie` (cookies for Outseta's domain make
//!   no sense on the gateway's).

use http::HeaderValue;
use http::header::{self, HeaderMap, HeaderName};

/// The default `forward_headers`.
pub const DEFAULT_FORWARD_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-type",
    "traceparent",
    "tracestate",
];

/// W3C trace context: the only listed headers forwarded on cacheable rules (they do not
/// change the answer).
pub const TRACE_HEADERS: &[&str] = &["traceparent", "tracestate"];

const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == "keep-alive" || name == "proxy-connection"
}

/// Why `name` may not be in `forward_headers`, or `None` when it may.
pub fn refused_forward_header(name: &HeaderName) -> Option<&'static str> {
    let n = name.as_str();
    if *name == header::AUTHORIZATION || *name == header::COOKIE {
        return Some("the client's credentials never reach Outseta (the rule's credential is set)");
    }
    if *name == header::HOST {
        return Some("Host is the upstream's");
    }
    if is_hop_by_hop(name) || *name == header::CONTENT_LENGTH {
        return Some("hop-by-hop and framing headers are set by the gateway");
    }
    if matches!(
        n,
        "x-http-method-override" | "x-http-method" | "x-method-override"
    ) {
        return Some("a method override would turn the judged request into another");
    }
    if matches!(n, "x-original-url" | "x-rewrite-url") {
        return Some("a URL rewrite would turn the judged request into another");
    }
    if n == "forwarded"
        || n.starts_with("x-forwarded-")
        || matches!(n, "x-real-ip" | "x-client-ip" | "true-client-ip")
    {
        return Some("client-IP claims from the client are not passed on");
    }
    if n == "x-request-id" {
        return Some("the gateway sets the request id itself");
    }
    None
}

/// What the request being forwarded is, as far as its headers go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// The rule caches answers: only trace headers of the client's travel.
    pub cacheable: bool,
    /// The body was rewritten as JSON: its `Content-Length` is recomputed and its type is
    /// `application/json`.
    pub body_rewritten: bool,
    /// The gateway reads the response body: ask for it uncompressed.
    pub identity_encoding: bool,
}

impl Shape {
    /// The shape of a request to a rule that caches (`cacheable`) and/or checks responses
    /// (`checks_response`): either way the gateway reads the answer, so it asks for it
    /// uncompressed.
    pub fn new(cacheable: bool, checks_response: bool, body_rewritten: bool) -> Self {
        Self {
            cacheable,
            body_rewritten,
            identity_encoding: cacheable || checks_response,
        }
    }
}

/// The headers of the upstream request before the request id and the credential: the
/// client's headers that are in `allow` (only the trace headers among them when the rule is
/// cacheable), `Content-Length` when the body travels as sent, and what the shape implies
/// (`Content-Type: application/json` for a rewritten body, `Accept-Encoding: identity`).
/// A listed name that the client's `Connection` header names is hop-by-hop for this message
/// and stays behind.
pub fn upstream_request(client: &HeaderMap, allow: &[HeaderName], shape: Shape) -> HeaderMap {
    // room for what the forwarder adds: the request id, the credential, `Accept-Encoding`
    let mut out = HeaderMap::with_capacity(allow.len() + 4);
    let listed = if client.contains_key(header::CONNECTION) {
        connection_listed(client)
    } else {
        Vec::new()
    };
    for (name, value) in client {
        let pass = if *name == header::CONTENT_LENGTH {
            !shape.body_rewritten
        } else {
            allow.contains(name)
                && (!shape.cacheable || TRACE_HEADERS.contains(&name.as_str()))
                && !listed.contains(name)
        };
        if pass {
            out.append(name.clone(), value.clone());
        }
    }
    if shape.body_rewritten {
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if shape.identity_encoding {
        out.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    out
}

/// Names listed in `Connection` (they are hop-by-hop for this message too).
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// Strips what must not travel back to the client.
pub fn downstream_response(headers: &mut HeaderMap) {
    // One pass over the names; nothing is allocated or looked up when nothing is to go
    // (the usual case).
    let listed = connection_listed(headers);
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n) || *n == header::SET_COOKIE || listed.contains(n))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_list() -> Vec<HeaderName> {
        DEFAULT_FORWARD_HEADERS
            .iter()
            .map(|n| HeaderName::from_static(n))
            .collect()
    }

    fn attack() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("authorization", "bearer x"),
            ("cookie", "a=b"),
            ("proxy-authorization", "Basic x"),
            ("connection", "keep-alive, x-secret-hop, accept-language"),
            ("x-secret-hop", "1"),
            ("host", "gw"),
            ("x-http-method-override", "DELETE"),
            ("x-original-url", "/api/v1/crm/people/other"),
            ("x-rewrite-url", "/api/v1/crm/people/other"),
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "1.2.3.4"),
            ("range", "bytes=0-1"),
            ("if-none-match", "\"x\""),
            ("cache-control", "no-cache"),
            ("expect", "100-continue"),
            ("accept", "application/json"),
            ("accept-language", "de"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("content-length", "2"),
        ] {
            h.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn only_listed_headers_travel() {
        let h = attack();
        let rewritten = Shape {
            body_rewritten: true,
            ..Shape::default()
        };
        let out = upstream_request(&h, &default_list(), rewritten);
        assert_eq!(
            names(&out),
            ["accept", "content-type", "traceparent"],
            "accept-language is named in Connection"
        );
        assert_eq!(out[header::CONTENT_TYPE], "application/json");
        let out = upstream_request(&h, &default_list(), Shape::default());
        assert!(out.contains_key(header::CONTENT_LENGTH));
        assert_eq!(upstream_request(&h, &[], Shape::default()).len(), 1);
    }

    #[test]
    fn cacheable_rules_forward_only_trace_headers() {
        let shape = Shape {
            cacheable: true,
            identity_encoding: true,
            ..Shape::default()
        };
        let out = upstream_request(&attack(), &default_list(), shape);
        assert_eq!(
            names(&out),
            ["accept-encoding", "content-length", "traceparent"]
        );
        assert_eq!(out[header::ACCEPT_ENCODING], "identity");
    }

    #[test]
    fn credentials_framing_overrides_and_ip_claims_are_refused_in_the_list() {
        for refused in [
            "authorization",
            "cookie",
            "host",
            "connection",
            "transfer-encoding",
            "keep-alive",
            "content-length",
            "x-http-method-override",
            "x-original-url",
            "x-rewrite-url",
            "forwarded",
            "x-forwarded-for",
            "x-request-id",
        ] {
            assert!(
                refused_forward_header(&HeaderName::from_static(refused)).is_some(),
                "{refused}"
            );
        }
        for ok in DEFAULT_FORWARD_HEADERS {
            assert_eq!(refused_forward_header(&HeaderName::from_static(ok)), None);
        }
    }

    #[test]
    fn strips_cookies_and_hop_by_hop_from_responses() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-connection", HeaderValue::from_static("close"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        downstream_response(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::CONTENT_TYPE));
        let mut clean = HeaderMap::new();
        clean.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        downstream_response(&mut clean);
        assert_eq!(clean.len(), 1);
    }
}
