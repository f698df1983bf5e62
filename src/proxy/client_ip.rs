//! Who the client is when a trusted proxy stands in front of the gateway.
//!
//! The per-user limit and the budget's fair queue count anonymous callers by client IP
//! ([`crate::limits::key`]). Behind a reverse proxy (the SPA's nginx in the sidecar layout, an
//! ingress controller, a cloud load balancer) the TCP peer is that proxy, so every anonymous
//! caller would share one bucket. With `[server].trusted_proxies` set, a request whose TCP peer
//! is in those ranges is attributed to the address its `X-Forwarded-For` names: the list is read
//! from the right (the entry the nearest proxy appended) past every trusted hop, and the first
//! address that is not trusted is the client. Entries a client wrote itself sit further left
//! and are never reached while an untrusted hop stands between; a missing or malformed header
//! leaves the peer.
//!
//! Guarantees: with the default (no trusted proxies) nothing is read and the peer is the
//! client; an untrusted peer's header is ignored, so a caller cannot pick its own bucket.
//!
//! # Position in the stack
//! Called by [`super::load_snapshot`] right after the configuration is loaded, before anything
//! reads [`ClientAddr`].

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

use super::context::ClientAddr;

/// Replaces the request's [`ClientAddr`] by the client a trusted proxy names, if any.
pub fn resolve(addr: &mut Option<ClientAddr>, headers: &HeaderMap, trusted: &[IpNet]) {
    if trusted.is_empty() {
        return;
    }
    let Some(peer) = addr.map(|a| a.0) else {
        return;
    };
    let client = client_ip(peer.ip(), headers, trusted);
    if client != peer.ip() {
        *addr = Some(ClientAddr(SocketAddr::new(client, 0)));
    }
}

/// The client address for a request from `peer` (see the module docs).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&unmapped(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    // Several X-Forwarded-For fields are one list, in order (RFC 9110 §5.3), read from the
    // right. A field that is not text counts as one malformed entry: skipping it would step
    // over the hop a proxy appended to it and reach entries the client wrote.
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        // (an unreadable field becomes "", one entry that does not parse)
        .flat_map(|v| v.to_str().unwrap_or("").rsplit(','));
    let mut client = peer;
    for entry in entries {
        let Some(ip) = parse_entry(entry) else {
            // Garbage where an address should be: trust nothing further left.
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an IPv4 or IPv6 address, optionally `[v6]:port` or `v4:port`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(unmapped(ip));
    }
    e.parse::<SocketAddr>().ok().map(|a| unmapped(a.ip()))
}

/// `::ffff:a.b.c.d` (a dual-stack listener's view of an IPv4 peer) as `a.b.c.d`.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .unwrap_or_else(|_| IpNet::from(s.parse::<IpAddr>().unwrap()))
            })
            .collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &t), ip("198.51.100.1"));
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
    }

    #[test]
    fn a_trusted_peer_names_the_client() {
        let t = nets(&["127.0.0.1"]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("203.0.113.9"));
        // no header: the proxy itself
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &t),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_wins_so_a_forged_entry_is_ignored() {
        // client forged "1.2.3.4"; the ingress (10.0.0.5) appended the real 203.0.113.9, the
        // pod's nginx appended 10.0.0.5
        let t = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let h = xff(&["1.2.3.4, 203.0.113.9", "10.0.0.5"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("203.0.113.9"));
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(client_ip(ip("10.9.9.9"), &h, &t), ip("10.1.1.1"));
    }

    #[test]
    fn garbage_stops_the_walk() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.9, unknown, 10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.2"));
    }

    #[test]
    fn a_field_that_is_not_text_stops_the_walk_too() {
        // a proxy that appends to the last field: the client's bytes make it unreadable, and
        // the walk must not step over it to the address the client wrote in a field before
        let t = nets(&["10.0.0.0/8"]);
        let mut h = xff(&["1.2.3.4"]);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 203.0.113.9").unwrap(),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let t = nets(&["::1", "10.0.0.0/8"]);
        let h = xff(&["[2001:db8::7]:4711"]);
        assert_eq!(client_ip(ip("::1"), &h, &t), ip("2001:db8::7"));
        let h = xff(&["203.0.113.9:5555"]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.3"), &h, &t), ip("203.0.113.9"));
    }

    #[test]
    fn resolve_rewrites_the_address_only_when_trusted() {
        let t = nets(&["127.0.0.1"]);
        let h = xff(&["203.0.113.9"]);
        let mut addr = Some(ClientAddr(SocketAddr::from(([127, 0, 0, 1], 4000))));
        resolve(&mut addr, &h, &t);
        assert_eq!(addr.unwrap().0.ip(), ip("203.0.113.9"));
        let mut addr = Some(ClientAddr(SocketAddr::from(([127, 0, 0, 1], 4000))));
        resolve(&mut addr, &h, &[]);
        assert_eq!(addr.unwrap().0.port(), 4000);
    }
}
