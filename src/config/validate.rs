//! `FileConfig` → `Config`: defaults, parsing of typed values, cross-field checks, rule
//! compilation. Collects every problem instead of stopping at the first.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Uri};

use super::file::FileConfig;
use super::types::{Rate, parse_duration, parse_rate, parse_size};
use super::{Auth, Cache, Config, Cors, Outseta, Server, Store, UpstreamLimit, UserLimit};
use crate::rules::RuleSet;
use crate::upstream::headers;

struct Ctx<'a> {
    problems: &'a mut Vec<String>,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn dur(&mut self, section: &str, key: &str, v: &Option<String>, default: &str) -> Duration {
        let s = v.as_deref().unwrap_or(default);
        match parse_duration(s) {
            Ok(d) => d,
            Err(e) => {
                self.problems.push(format!("[{section}] `{key}`: {e}"));
                parse_duration(default).unwrap_or_default()
            }
        }
    }

    fn size(&mut self, section: &str, key: &str, v: &Option<String>, default: &str) -> u64 {
        let s = v.as_deref().unwrap_or(default);
        match parse_size(s) {
            Ok(d) => d,
            Err(e) => {
                self.problems.push(format!("[{section}] `{key}`: {e}"));
                parse_size(default).unwrap_or_default()
            }
        }
    }

    fn rate(&mut self, section: &str, v: &Option<String>, default: &str) -> Rate {
        let s = v.as_deref().unwrap_or(default);
        match parse_rate(s) {
            Ok(r) => r,
            Err(e) => {
                self.problems.push(format!("[{section}] `rate`: {e}"));
                Rate {
                    count: NonZeroU32::MIN,
                    per: Duration::from_secs(1),
                }
            }
        }
    }

    fn burst(&mut self, section: &str, v: Option<i64>, default: u32) -> NonZeroU32 {
        let n = v.unwrap_or(i64::from(default));
        match u32::try_from(n).ok().and_then(NonZeroU32::new) {
            Some(b) => b,
            None => {
                self.problems.push(format!(
                    "[{section}] `burst`: must be an integer ≥ 1, got {n}"
                ));
                NonZeroU32::MIN
            }
        }
    }

    fn addr(&mut self, key: &str, v: &Option<String>, default: &str) -> SocketAddr {
        let s = v.as_deref().unwrap_or(default);
        match s.parse() {
            Ok(a) => a,
            Err(_) => {
                self.problems.push(format!(
                    "[server] `{key}`: {s:?} is not an IP:port address such as \"0.0.0.0:8080\""
                ));
                SocketAddr::from(([127, 0, 0, 1], 0))
            }
        }
    }

    /// `[server].trusted_proxies`: IP addresses or CIDR ranges.
    fn nets(&mut self, v: &[String]) -> Vec<ipnet::IpNet> {
        let mut nets = Vec::with_capacity(v.len());
        for s in v {
            match s.parse::<ipnet::IpNet>() {
                Ok(n) => nets.push(n.trunc()),
                Err(_) => match s.parse::<std::net::IpAddr>() {
                    Ok(ip) => nets.push(ipnet::IpNet::from(ip)),
                    Err(_) => self.problems.push(format!(
                        "[server] `trusted_proxies`: {s:?} is not an IP address or CIDR range such as \"10.0.0.0/8\""
                    )),
                },
            }
        }
        nets
    }

    fn url(&mut self, key: &str, s: &str) -> Option<Uri> {
        let uri: Uri = match s.parse() {
            Ok(u) => u,
            Err(_) => {
                self.problems
                    .push(format!("[outseta] `{key}`: {s:?} is not a URL"));
                return None;
            }
        };
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => self.warnings.push(format!(
                "[outseta] `{key}` uses http:// ({s}): traffic to it is not encrypted"
            )),
            _ => {
                self.problems.push(format!(
                    "[outseta] `{key}`: {s:?} must be an http:// or https:// URL"
                ));
                return None;
            }
        }
        if uri.authority().is_none() {
            self.problems
                .push(format!("[outseta] `{key}`: {s:?} has no host"));
            return None;
        }
        if uri.query().is_some() {
            self.problems
                .push(format!("[outseta] `{key}`: {s:?} must not have a query"));
            return None;
        }
        Some(uri)
    }
}

pub(super) fn validate(file: FileConfig, problems: &mut Vec<String>) -> Option<Config> {
    let mut cx = Ctx {
        problems,
        warnings: Vec::new(),
    };

    // [outseta]
    let o = &file.outseta;
    let domain = o.domain.as_deref().map(str::trim).filter(|d| !d.is_empty());
    if let Some(d) = domain
        && (d.contains("://") || d.contains('/') || d.contains(char::is_whitespace))
    {
        cx.problems.push(format!(
            "[outseta] `domain`: {d:?} must be a bare host name such as \"yourco.outseta.com\" (no scheme, no path)"
        ));
    }
    let derive =
        |key: &str, given: &Option<String>, f: &dyn Fn(&str) -> String, cx: &mut Ctx| match (
            given.as_deref(),
            domain,
        ) {
            (Some(v), _) => Some(v.trim().to_string()),
            (None, Some(d)) => Some(f(d)),
            (None, None) => {
                cx.problems.push(format!(
                    "[outseta] `{key}`: required when `domain` is not set"
                ));
                None
            }
        };
    let upstream_s = derive(
        "upstream",
        &o.upstream,
        &|d| format!("https://{d}"),
        &mut cx,
    );
    let jwks_s = derive(
        "jwks_url",
        &o.jwks_url,
        &|d| format!("https://{d}/.well-known/jwks"),
        &mut cx,
    );
    let issuer = derive("issuer", &o.issuer, &|d| format!("http://{d}"), &mut cx);
    let audience = derive("audience", &o.audience, &|d| d.to_string(), &mut cx);
    let upstream = upstream_s.and_then(|s| cx.url("upstream", s.trim_end_matches('/')));
    let jwks_url = jwks_s.and_then(|s| cx.url("jwks_url", &s));
    if issuer.as_deref() == Some("") || audience.as_deref() == Some("") {
        cx.problems
            .push("[outseta] `issuer` and `audience` must not be empty".into());
    }

    let forward_headers = forward_headers(o.forward_headers.as_deref(), cx.problems);

    // [server]
    let s = &file.server;
    let server = Server {
        listen: cx.addr("listen", &s.listen, "0.0.0.0:8080"),
        admin_listen: cx.addr("admin_listen", &s.admin_listen, "127.0.0.1:9090"),
        request_timeout: cx.dur("server", "request_timeout", &s.request_timeout, "30s"),
        upstream_timeout: cx.dur("server", "upstream_timeout", &s.upstream_timeout, "15s"),
        max_request_body: cx.size("server", "max_request_body", &s.max_request_body, "1MiB"),
        max_header_bytes: usize::try_from(cx.size(
            "server",
            "max_header_bytes",
            &s.max_header_bytes,
            "16KiB",
        ))
        .unwrap_or(usize::MAX),
        shutdown_grace: cx.dur("server", "shutdown_grace", &s.shutdown_grace, "25s"),
        max_connections: match s.max_connections {
            None => 10_000,
            Some(n) if (1..=1_000_000).contains(&n) => usize::try_from(n).unwrap_or(10_000),
            Some(n) => {
                cx.problems.push(format!(
                    "[server] `max_connections`: must be an integer from 1 to 1000000, got {n}"
                ));
                10_000
            }
        },
        idle_timeout: cx.dur("server", "idle_timeout", &s.idle_timeout, "60s"),
        header_read_timeout: cx.dur(
            "server",
            "header_read_timeout",
            &s.header_read_timeout,
            "10s",
        ),
        trusted_proxies: cx.nets(s.trusted_proxies.as_deref().unwrap_or_default()),
    };
    if server.request_timeout.is_zero() || server.upstream_timeout.is_zero() {
        cx.problems
            .push("[server] timeouts must be greater than zero".into());
    }
    if server.upstream_timeout > server.request_timeout {
        cx.warnings.push(format!(
            "[server] `upstream_timeout` ({}) exceeds `request_timeout` ({}): the request timeout will cut attempts short",
            humantime::format_duration(server.upstream_timeout),
            humantime::format_duration(server.request_timeout)
        ));
    }
    if server.max_header_bytes < 1024 {
        cx.problems
            .push("[server] `max_header_bytes` must be at least 1KiB".into());
    }
    if server.listen == server.admin_listen && server.listen.port() != 0 {
        cx.problems.push("[server] `listen` and `admin_listen` must differ: the admin port must never be the public one".into());
    }

    // [auth]
    let a = &file.auth;
    let auth = Auth {
        leeway: cx.dur("auth", "leeway", &a.leeway, "30s"),
        jwks_refresh: cx.dur("auth", "jwks_refresh", &a.jwks_refresh, "10m"),
    };
    if auth.jwks_refresh < Duration::from_secs(1) {
        cx.problems
            .push("[auth] `jwks_refresh` must be at least 1s".into());
    }

    // [cache]
    let c = &file.cache;
    let cache = Cache {
        max_size: cx.size("cache", "max_size", &c.max_size, "64MiB"),
        ttl: cx.dur("cache", "ttl", &c.ttl, "30s"),
        stale_while_revalidate: cx.dur(
            "cache",
            "stale_while_revalidate",
            &c.stale_while_revalidate,
            "30s",
        ),
        stale_if_error: cx.dur("cache", "stale_if_error", &c.stale_if_error, "5m"),
    };

    // [upstream_limit]
    let u = &file.upstream_limit;
    let store = match u.store.as_deref().unwrap_or("memory") {
        "memory" => Store::Memory,
        "redis" => Store::Redis,
        other => {
            cx.problems.push(format!(
                "[upstream_limit] `store`: {other:?} is not \"memory\" or \"redis\""
            ));
            Store::Memory
        }
    };
    let redis_url = u
        .redis_url
        .clone()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    if store == Store::Redis
        && !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://"))
    {
        cx.problems
            .push("[upstream_limit] `redis_url` must start with redis:// or rediss://".into());
    }
    let share = u.redis_fallback_share.unwrap_or(0.5);
    if !(share > 0.0 && share <= 1.0) {
        cx.problems.push(format!(
            "[upstream_limit] `redis_fallback_share`: must be in (0, 1], got {share}"
        ));
    }
    let redis_key = u
        .redis_key
        .clone()
        .unwrap_or_else(|| "outseta-gateway:budget".into());
    if redis_key.is_empty() {
        cx.problems
            .push("[upstream_limit] `redis_key` must not be empty".into());
    }
    let upstream_limit = UpstreamLimit {
        rate: cx.rate("upstream_limit", &u.rate, "4/s"),
        burst: cx.burst("upstream_limit", u.burst, 4),
        max_wait: cx.dur("upstream_limit", "max_wait", &u.max_wait, "10s"),
        store,
        redis_url,
        redis_url_from_env: false,
        redis_key,
        redis_fallback_share: share,
    };

    // [user_limit]
    let ul = &file.user_limit;
    let user_limit = UserLimit {
        rate: cx.rate("user_limit", &ul.rate, "120/min"),
        burst: cx.burst("user_limit", ul.burst, 30),
    };

    // [cors]
    let co = &file.cors;
    let mut allowed_origins = Vec::new();
    for origin in co.allowed_origins.iter().flatten() {
        match normalize_origin(origin) {
            Ok(o) => allowed_origins.push(o),
            Err(e) => cx.problems.push(format!("[cors] `allowed_origins`: {e}")),
        }
    }
    let default_headers = vec![
        "authorization".to_string(),
        "content-type".into(),
        "x-request-id".into(),
    ];
    let mut allowed_headers = Vec::new();
    for h in co.allowed_headers.as_ref().unwrap_or(&default_headers) {
        match HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()) {
            Ok(n) => allowed_headers.push(n),
            Err(_) => cx.problems.push(format!(
                "[cors] `allowed_headers`: {h:?} is not a header name"
            )),
        }
    }
    let cors = Cors {
        allowed_origins,
        allowed_headers,
        max_age: cx.dur("cors", "max_age", &co.max_age, "10m"),
    };

    for (key, d) in [
        ("idle_timeout", server.idle_timeout),
        ("header_read_timeout", server.header_read_timeout),
    ] {
        if d.is_zero() {
            cx.problems
                .push(format!("[server] `{key}`: must be longer than 0"));
        }
    }

    // [[rule]]
    if file.rules.is_empty() {
        cx.warnings
            .push("no [[rule]] is defined: every request will be denied".into());
    }
    let rules = RuleSet::compile(&file.rules, cx.problems);

    let warnings = cx.warnings;
    Some(Config {
        outseta: Outseta {
            domain: domain.map(str::to_string),
            upstream: upstream?,
            jwks_url: jwks_url?,
            issuer: issuer?,
            audience: audience?,
            forward_headers,
        },
        server,
        auth,
        cache,
        upstream_limit,
        user_limit,
        cors,
        rules: Arc::new(rules),
        warnings,
        path: None,
    })
}

/// `[outseta] forward_headers`: valid names, none that `upstream::headers` refuses, each once.
fn forward_headers(list: Option<&[String]>, problems: &mut Vec<String>) -> Arc<[HeaderName]> {
    let Some(list) = list else {
        return headers::DEFAULT_FORWARD_HEADERS
            .iter()
            .map(|n| HeaderName::from_static(n))
            .collect();
    };
    let mut out: Vec<HeaderName> = Vec::with_capacity(list.len());
    for raw in list {
        let Ok(name) = HeaderName::from_bytes(raw.trim().as_bytes()) else {
            problems.push(format!(
                "[outseta] `forward_headers`: {raw:?} is not a header name"
            ));
            continue;
        };
        if let Some(why) = headers::refused_forward_header(&name) {
            problems.push(format!(
                "[outseta] `forward_headers`: {raw:?} is refused: {why}"
            ));
        } else if !out.contains(&name) {
            out.push(name);
        }
    }
    out.into()
}

/// `https://App.Example.com:8443` → `https://app.example.com:8443`; refuses `*`, paths, etc.
pub fn normalize_origin(origin: &str) -> Result<String, String> {
    let o = origin.trim();
    if o == "*" {
        return Err(
            "\"*\" is refused: list exact origins such as \"https://app.example.com\"".into(),
        );
    }
    let (scheme, rest) = o
        .split_once("://")
        .ok_or_else(|| format!("{o:?} is not an origin such as \"https://app.example.com\""))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(format!("{o:?}: scheme must be http or https"));
    }
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '*', '@'])
        || rest.contains(char::is_whitespace)
    {
        return Err(format!(
            "{o:?} must be scheme://host[:port] with no path, wildcard or trailing slash"
        ));
    }
    Ok(format!("{scheme}://{}", rest.to_ascii_lowercase()))
}
