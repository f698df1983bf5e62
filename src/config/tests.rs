use super::*;

const MINIMAL: &str = r#"
[outseta]
domain = "yourco.outseta.com"

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"
"#;

#[test]
fn defaults_derive_from_domain() {
    let c = Config::from_toml(MINIMAL, "test").unwrap();
    assert_eq!(
        c.outseta.upstream.to_string(),
        "https://yourco.outseta.com/"
    );
    assert_eq!(
        c.outseta.jwks_url.to_string(),
        "https://yourco.outseta.com/.well-known/jwks"
    );
    assert_eq!(c.outseta.issuer, "http://yourco.outseta.com");
    assert_eq!(c.outseta.audience, "yourco.outseta.com");
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.server.max_request_body, 1 << 20);
    assert_eq!(c.server.max_header_bytes, 16 << 10);
    assert_eq!(c.upstream_limit.rate.to_string(), "4/s");
    assert_eq!(c.upstream_limit.burst.get(), 4);
    assert_eq!(c.user_limit.rate.to_string(), "120/min");
    assert_eq!(c.cache.max_size, 64 << 20);
    assert_eq!(c.cors.allowed_headers.len(), 3);
    assert!(c.server.trusted_proxies.is_empty());
    assert!(c.needs_api_key());
}

#[test]
fn trusted_proxies_take_addresses_and_ranges() {
    let text = MINIMAL.replace(
        "[[rule]]",
        "[server]\ntrusted_proxies = [\"127.0.0.1\", \"10.1.2.3/8\", \"fd00::/8\"]\n\n[[rule]]",
    );
    let c = Config::from_toml(&text, "test").unwrap();
    let nets: Vec<String> = c
        .server
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    // a plain address is one host; a range's host bits are dropped
    assert_eq!(nets, ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]);
}

#[test]
fn reports_every_problem_at_once() {
    let text = r#"
[outseta]
domian = "x"

[server]
listen = "nowhere"
request_timeout = "soon"
trusted_proxies = ["10.0.0.0/8", "proxy.internal"]

[cors]
allowed_origins = ["*", "https://ok.example.com", "https://bad.example.com/"]

[[rule]]
name = "dup"
methods = ["GET"]
path = "/api/v1/x"

[[rule]]
name = "dup"
methods = ["FETCH"]
path = "/api/v1/y/{id}"
when = "path.uid == claims.sub"
cache = "forever"

[[rule]]
name = "minting"
methods = ["POST"]
path = "/api/v1/tokens"

[[rule]]
methods = ["GET"]
"#;
    let e = Config::from_toml(text, "t").unwrap_err();
    let all = e.problems.join("\n");
    for needle in [
        "[outseta] unknown key `domian`",
        "[outseta] `upstream`: required",
        "[server] `listen`",
        "[server] `request_timeout`",
        "[server] `trusted_proxies`: \"proxy.internal\"",
        "\"*\" is refused",
        "https://bad.example.com/",
        "rule \"dup\": duplicate rule name",
        "unsupported method \"FETCH\"",
        "path.uid",
        "`cache`",
        "rule \"minting\": `credential = \"api_key\"`",
        "rule #4: missing `name`",
        "rule #4: missing `path`",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn tokens_rule_is_fine_without_the_api_key() {
    let text = r#"
[outseta]
domain = "x.outseta.com"
[[rule]]
name = "login"
methods = ["POST"]
path = "/api/v1/tokens/{*rest}"
auth = "none"
credential = "none"
"#;
    let c = Config::from_toml(text, "t").unwrap();
    assert!(!c.needs_api_key());
}

#[test]
fn explicit_urls_without_domain() {
    let text = r#"
[outseta]
upstream = "http://127.0.0.1:9/"
jwks_url = "http://127.0.0.1:9/.well-known/jwks"
issuer = "http://sim"
audience = "sim"
"#;
    let c = Config::from_toml(text, "t").unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("http://")));
    assert_eq!(
        c.outseta.upstream.authority().unwrap().as_str(),
        "127.0.0.1:9"
    );
}

#[test]
fn forward_headers_default_and_refusals() {
    let c = Config::from_toml(MINIMAL, "test").unwrap();
    let names: Vec<&str> = c
        .outseta
        .forward_headers
        .iter()
        .map(|h| h.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "accept",
            "accept-language",
            "content-type",
            "traceparent",
            "tracestate"
        ]
    );
    let with = |list: &str| {
        MINIMAL.replace(
            "[outseta]\n",
            &format!("[outseta]\nforward_headers = {list}\n"),
        )
    };
    let c = Config::from_toml(&with(r#"["Accept", "X-Custom", "accept"]"#), "test").unwrap();
    let names: Vec<&str> = c
        .outseta
        .forward_headers
        .iter()
        .map(|h| h.as_str())
        .collect();
    assert_eq!(names, ["accept", "x-custom"]);
    for refused in [
        "Authorization",
        "cookie",
        "Host",
        "connection",
        "transfer-encoding",
        "X-HTTP-Method-Override",
        "X-Original-URL",
        "X-Forwarded-For",
        "Forwarded",
        "not a header",
    ] {
        let err = Config::from_toml(&with(&format!("[{refused:?}]")), "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`forward_headers`"), "{refused}: {err}");
        assert!(err.contains(refused), "{refused}: {err}");
    }
}

#[test]
fn fields_allow_is_checked_at_load() {
    let rule = |extra: &str| {
        format!(
            "[outseta]\ndomain = \"x.outseta.com\"\n[[rule]]\nname = \"r\"\nmethods = [\"GET\"]\npath = \"/a\"\n{extra}\n"
        )
    };
    assert!(
        Config::from_toml(
            &rule(
                r#"query_allow = ["fields"]
fields_allow = ["*", "Plan.*"]"#
            ),
            "t"
        )
        .is_ok()
    );
    for (bad, says) in [
        (r#"fields_allow = ["A..B"]"#, "`fields_allow`"),
        (r#"fields_allow = ["Pl*n"]"#, "`fields_allow`"),
        (
            "query_allow = [\"limit\"]\nfields_allow = [\"*\"]",
            "clients cannot send `fields`",
        ),
        (
            "query_set = { fields = \"'*'\" }\nfields_allow = [\"*\"]",
            "clients cannot send `fields`",
        ),
        (r#"query_allow = ["__*"]"#, "no field name"),
    ] {
        let err = Config::from_toml(&rule(bad), "t").unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn a_body_key_is_either_dropped_or_judged() {
    let text = format!(
        "{MINIMAL}\n[[rule]]\nname = \"w\"\nmethods = [\"PUT\"]\npath = \"/api/v1/profile\"\ncredential = \"user\"\nbody_allow = [\"FirstName\", \"Uid\"]\nbody_drop = [\"uid\", \"Created\"]\n"
    );
    let e = Config::from_toml(&text, "t").unwrap_err();
    assert!(
        e.problems
            .iter()
            .any(|p| p.contains("`body_drop`: \"uid\" is also in `body_allow`")),
        "{:?}",
        e.problems
    );
}
