//! Header hygiene between the client and Outseta (spec §4).
//!
//! Upstream requests never carry the client's `Authorization`, `Cookie`,
//! `Proxy-Authorization`, `Host` or hop-by-hop headers; the rule's credential is set by the
//! forwarder after this. Responses lose hop-by-hop headers and `Set-Cookie` (cookies for
//! Outseta's domain make no sense on the gateway's).

use http::header::{self, HeaderMap, HeaderName};

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

/// Copies the client's headers that may go upstream.
pub fn upstream_request(client: &HeaderMap, keep_content_length: bool) -> HeaderMap {
    let listed = connection_listed(client);
    // room for what the forwarder adds: the request id, the credential, `Accept-Encoding`
    let mut out = HeaderMap::with_capacity(client.len() + 3);
    for (name, value) in client {
        if is_hop_by_hop(name)
            || listed.contains(name)
            || name == header::AUTHORIZATION
            || name == header::COOKIE
            || name == header::HOST
            || (name == header::CONTENT_LENGTH && !keep_content_length)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
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
    use http::HeaderValue;

    #[test]
    fn strips_credentials_and_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer x"));
        h.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        h.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::HOST, HeaderValue::from_static("gw"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        let out = upstream_request(&h, false);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out.contains_key(header::ACCEPT));
        assert!(upstream_request(&h, true).contains_key(header::CONTENT_LENGTH));
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
