//! The raw shape of `gateway.toml`: a serde mirror of the file with no logic.
//!
//! Every field is optional here so that a missing key is reported by validation (with the rule
//! name) instead of stopping serde at the first one. Durations, sizes and rates stay strings
//! until `validate` parses them. Unknown keys are collected by `serde_ignored` in `read`, not
//! rejected by `deny_unknown_fields`, so that all of them are reported at once.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct OutsetaSection {
    pub domain: Option<String>,
    pub upstream: Option<String>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub forward_headers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub request_timeout: Option<String>,
    pub upstream_timeout: Option<String>,
    pub max_request_body: Option<String>,
    pub max_header_bytes: Option<String>,
    pub shutdown_grace: Option<String>,
    pub max_connections: Option<i64>,
    pub idle_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AuthSection {
    pub leeway: Option<String>,
    pub jwks_refresh: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CacheSection {
    pub max_size: Option<String>,
    pub ttl: Option<String>,
    pub stale_while_revalidate: Option<String>,
    pub stale_if_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UpstreamLimitSection {
    pub rate: Option<String>,
    pub burst: Option<i64>,
    pub max_wait: Option<String>,
    pub store: Option<String>,
    pub redis_url: Option<String>,
    pub redis_key: Option<String>,
    pub redis_fallback_share: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserLimitSection {
    pub rate: Option<String>,
    pub burst: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CorsSection {
    pub allowed_origins: Option<Vec<String>>,
    pub allowed_headers: Option<Vec<String>>,
    pub max_age: Option<String>,
}

pub use crate::rules::entry::RuleEntry;

/// The whole file, each section parsed on its own.
#[derive(Debug, Default)]
pub struct FileConfig {
    pub outseta: OutsetaSection,
    pub server: ServerSection,
    pub auth: AuthSection,
    pub cache: CacheSection,
    pub upstream_limit: UpstreamLimitSection,
    pub user_limit: UserLimitSection,
    pub cors: CorsSection,
    /// Rules in file order; `None` where the entry could not be parsed at all.
    pub rules: Vec<Option<RuleEntry>>,
}

const SECTIONS: &[&str] = &[
    "outseta",
    "server",
    "auth",
    "cache",
    "upstream_limit",
    "user_limit",
    "cors",
    "rule",
];

/// Parses the TOML text. Syntax errors are fatal (returned alone); everything else is
/// collected into `problems` and parsing continues, so one run reports every problem.
pub fn read(text: &str, problems: &mut Vec<String>) -> Result<FileConfig, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("TOML syntax error: {}", e.to_string().trim_end()))?;
    let mut file = FileConfig::default();
    for (key, value) in doc {
        match key.as_str() {
            "outseta" => file.outseta = section(&key, value, problems),
            "server" => file.server = section(&key, value, problems),
            "auth" => file.auth = section(&key, value, problems),
            "cache" => file.cache = section(&key, value, problems),
            "upstream_limit" => file.upstream_limit = section(&key, value, problems),
            "user_limit" => file.user_limit = section(&key, value, problems),
            "cors" => file.cors = section(&key, value, problems),
            "rule" => file.rules = rules(value, problems),
            other => problems.push(format!(
                "unknown key `{other}` at top level (expected one of: {})",
                SECTIONS.join(", ")
            )),
        }
    }
    Ok(file)
}

fn section<T: for<'de> Deserialize<'de> + Default>(
    name: &str,
    value: toml::Value,
    problems: &mut Vec<String>,
) -> T {
    if !value.is_table() {
        problems.push(format!("[{name}] must be a table"));
        return T::default();
    }
    let mut unknown = Vec::new();
    let parsed = serde_ignored::deserialize(value, |path| unknown.push(path.to_string()));
    for key in unknown {
        problems.push(format!("[{name}] unknown key `{key}`"));
    }
    match parsed {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("[{name}] {}", e.to_string().trim_end()));
            T::default()
        }
    }
}

fn rules(value: toml::Value, problems: &mut Vec<String>) -> Vec<Option<RuleEntry>> {
    let toml::Value::Array(items) = value else {
        problems.push("`rule` must be an array of tables: write each rule as [[rule]]".into());
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let label = rule_label(i, &item);
            if !item.is_table() {
                problems.push(format!("{label}: must be a table"));
                return None;
            }
            let mut unknown = Vec::new();
            let parsed: Result<RuleEntry, _> =
                serde_ignored::deserialize(item, |path| unknown.push(path.to_string()));
            for key in unknown {
                problems.push(format!("{label}: unknown key `{key}`"));
            }
            match parsed {
                Ok(r) => Some(r),
                Err(e) => {
                    problems.push(format!("{label}: {}", e.to_string().trim_end()));
                    None
                }
            }
        })
        .collect()
}

/// `rule "name"` when the entry has a string name, else `rule #N` (1-based).
pub fn rule_label(index: usize, item: &toml::Value) -> String {
    match item.get("name").and_then(|n| n.as_str()) {
        Some(name) => format!("rule {name:?}"),
        None => format!("rule #{}", index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_unknown_key() {
        let mut problems = Vec::new();
        let text = r#"
            bogus = 1
            [server]
            listn = "x"
            [[rule]]
            name = "a"
            metods = ["GET"]
            [[rule]]
            paht = "/x"
        "#;
        let file = read(text, &mut problems).unwrap();
        assert_eq!(file.rules.len(), 2);
        let all = problems.join("\n");
        assert!(all.contains("unknown key `bogus`"), "{all}");
        assert!(all.contains("[server] unknown key `listn`"), "{all}");
        assert!(all.contains("rule \"a\": unknown key `metods`"), "{all}");
        assert!(all.contains("rule #2: unknown key `paht`"), "{all}");
    }

    #[test]
    fn type_errors_name_the_section() {
        let mut problems = Vec::new();
        read("[upstream_limit]\nburst = \"four\"\n", &mut problems).unwrap();
        assert!(problems[0].starts_with("[upstream_limit]"), "{problems:?}");
    }

    #[test]
    fn syntax_error_is_fatal() {
        let mut problems = Vec::new();
        assert!(read("[server\n", &mut problems).is_err());
    }
}
