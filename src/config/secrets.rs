//! The Outseta API key and secret: from `OUTSETA_API_KEY` / `OUTSETA_API_SECRET`, or from the
//! files named by `OUTSETA_API_KEY_FILE` / `OUTSETA_API_SECRET_FILE` (Kubernetes secrets).
//! Also the Redis URL override `OUTSETA_REDIS_URL` / `OUTSETA_REDIS_URL_FILE` (it may carry a
//! password, so it may come from a Secret rather than `gateway.toml`).
//!
//! # Guarantees
//! - The values are never in the config file, a log line, an error message or `Debug` output:
//!   [`ApiCredential`] only exposes a `HeaderValue` marked sensitive.
//! - Messages name the variable or the file path, never the content.

use http::HeaderValue;

/// `Authorization: Outseta <key>:<secret>`, ready to insert.
#[derive(Clone)]
pub struct ApiCredential {
    header: HeaderValue,
}

impl std::fmt::Debug for ApiCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiCredential(<redacted>)")
    }
}

impl ApiCredential {
    /// Builds the header value; refuses characters that cannot travel in a header or would
    /// break the `key:secret` form.
    pub fn new(key: &str, secret: &str) -> Result<Self, String> {
        let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !ok(key) || key.contains(':') {
            return Err(
                "the Outseta API key must be non-empty printable ASCII without ':' or spaces"
                    .into(),
            );
        }
        if !ok(secret) {
            return Err(
                "the Outseta API secret must be non-empty printable ASCII without spaces".into(),
            );
        }
        let mut header = HeaderValue::from_str(&format!("Outseta {key}:{secret}"))
            .map_err(|_| "the Outseta API key or secret contains invalid characters".to_string())?;
        header.set_sensitive(true);
        Ok(Self { header })
    }

    pub fn header(&self) -> &HeaderValue {
        &self.header
    }
}

fn one(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Option<String>, String> {
    let file_var = format!("{name}_FILE");
    match (
        lookup(name).filter(|v| !v.is_empty()),
        lookup(&file_var).filter(|v| !v.is_empty()),
    ) {
        (Some(_), Some(_)) => Err(format!("set only one of {name} and {file_var}")),
        (Some(v), None) => Ok(Some(v.trim().to_string())),
        (None, Some(path)) => read_file(&path)
            .map(|v| Some(v.trim().to_string()))
            .map_err(|e| format!("{file_var}: cannot read {path}: {e}")),
        (None, None) => Ok(None),
    }
}

/// Loads the credential through `lookup` (the process environment in `main`; a map in tests).
/// `Ok(None)` when neither is configured.
pub fn load(
    lookup: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Option<ApiCredential>, String> {
    let key = one("OUTSETA_API_KEY", lookup, read_file)?;
    let secret = one("OUTSETA_API_SECRET", lookup, read_file)?;
    match (key, secret) {
        (Some(k), Some(s)) => ApiCredential::new(&k, &s).map(Some),
        (None, None) => Ok(None),
        (Some(_), None) => {
            Err("OUTSETA_API_KEY is set but OUTSETA_API_SECRET (or _FILE) is not".into())
        }
        (None, Some(_)) => {
            Err("OUTSETA_API_SECRET is set but OUTSETA_API_KEY (or _FILE) is not".into())
        }
    }
}

/// The Redis URL from `OUTSETA_REDIS_URL` or the file named by `OUTSETA_REDIS_URL_FILE`
/// (trimmed); `Ok(None)` when neither is set. Errors name the variable, never the URL.
pub fn redis_url(
    lookup: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Option<String>, String> {
    let url = one("OUTSETA_REDIS_URL", lookup, read_file)?;
    match url {
        Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => Ok(Some(u)),
        Some(_) => Err(
            "OUTSETA_REDIS_URL (or the file named by OUTSETA_REDIS_URL_FILE) must start with redis:// or rediss://"
                .into(),
        ),
        None => Ok(None),
    }
}

/// [`redis_url`] from the real process environment and filesystem.
pub fn redis_url_from_env() -> Result<Option<String>, String> {
    redis_url(&|k| std::env::var(k).ok(), &|p| std::fs::read_to_string(p))
}

/// Loads from the real process environment and filesystem.
pub fn from_env() -> Result<Option<ApiCredential>, String> {
    load(&|k| std::env::var(k).ok(), &|p| std::fs::read_to_string(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(
        vars: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> Result<Option<ApiCredential>, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let files: HashMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&|k| vars.get(k).cloned(), &|p| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        })
    }

    #[test]
    fn from_variables_and_files() {
        let c = with(
            &[("OUTSETA_API_KEY", "k1"), ("OUTSETA_API_SECRET", "s1")],
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.header().to_str().unwrap(), "Outseta k1:s1");
        assert!(c.header().is_sensitive());
        let c = with(
            &[
                ("OUTSETA_API_KEY_FILE", "/k"),
                ("OUTSETA_API_SECRET_FILE", "/s"),
            ],
            &[("/k", "k2\n"), ("/s", "s2\n")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.header().to_str().unwrap(), "Outseta k2:s2");
        assert!(with(&[], &[]).unwrap().is_none());
    }

    #[test]
    fn errors_never_show_values() {
        let e = with(&[("OUTSETA_API_KEY", "topsecretkey")], &[]).unwrap_err();
        assert!(!e.contains("topsecretkey"));
        let e = with(
            &[
                ("OUTSETA_API_KEY", "a b"),
                ("OUTSETA_API_SECRET", "hunter2"),
            ],
            &[],
        )
        .unwrap_err();
        assert!(!e.contains("hunter2") && !e.contains("a b"));
        let e = with(
            &[
                ("OUTSETA_API_KEY", "k"),
                ("OUTSETA_API_KEY_FILE", "/k"),
                ("OUTSETA_API_SECRET", "s"),
            ],
            &[],
        )
        .unwrap_err();
        assert!(e.contains("only one"));
        let c = ApiCredential::new("k", "hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn redis_url_from_variable_or_file_never_echoed() {
        let files: HashMap<String, String> =
            [("/r".to_string(), "redis://:pw@redis:6379/0\n".to_string())].into();
        let read = |p: &str| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        };
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            redis_url(&env(&[("OUTSETA_REDIS_URL_FILE", "/r")]), &read).unwrap(),
            Some("redis://:pw@redis:6379/0".to_string())
        );
        assert_eq!(
            redis_url(&env(&[("OUTSETA_REDIS_URL", "rediss://h:1")]), &read).unwrap(),
            Some("rediss://h:1".to_string())
        );
        assert_eq!(redis_url(&env(&[]), &read).unwrap(), None);
        let e = redis_url(&env(&[("OUTSETA_REDIS_URL", "http://:hunter2@h")]), &read).unwrap_err();
        assert!(e.contains("redis://") && !e.contains("hunter2"));
        let e = redis_url(&env(&[("OUTSETA_REDIS_URL_FILE", "/missing")]), &read).unwrap_err();
        assert!(e.contains("OUTSETA_REDIS_URL_FILE"));
    }
}
