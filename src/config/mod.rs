//! Configuration: `gateway.toml` → [`file::FileConfig`] (serde, no logic) → `validate`
//! (every problem collected, rules compiled) → [`Config`] (typed, ready to build from).
//!
//! Secrets never come from the file: see [`secrets`].

pub mod file;
pub mod secrets;
pub mod types;
mod validate;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Uri};

use crate::rules::RuleSet;
pub use types::Rate;

/// Every problem found while loading, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {} problem(s):", self.source, self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone)]
pub struct Outseta {
    pub domain: Option<String>,
    /// Scheme + authority (+ optional base path, without trailing `/`).
    pub upstream: Uri,
    pub jwks_url: Uri,
    pub issuer: String,
    pub audience: String,
    /// Client request headers that may travel upstream (lower-case names; see
    /// `upstream::headers`).
    pub forward_headers: Arc<[HeaderName]>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub request_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_request_body: u64,
    pub max_header_bytes: usize,
    pub shutdown_grace: Duration,
    /// Open client connections at most; past it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// A connection with nothing in flight and no bytes moving is closed after this.
    pub idle_timeout: Duration,
    /// From the first byte of a request to the end of its head.
    pub header_read_timeout: Duration,
    /// Peers whose `X-Forwarded-For` names the client (see `proxy::client_ip`); empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub leeway: Duration,
    pub jwks_refresh: Duration,
}

#[derive(Debug, Clone)]
pub struct Cache {
    pub max_size: u64,
    pub ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Memory,
    Redis,
}

#[derive(Clone)]
pub struct UpstreamLimit {
    pub rate: Rate,
    pub burst: NonZeroU32,
    pub max_wait: Duration,
    pub store: Store,
    /// May carry a password: never logged (`Debug` hides it).
    pub redis_url: String,
    /// Whether `redis_url` came from `OUTSETA_REDIS_URL(_FILE)` rather than the file.
    pub redis_url_from_env: bool,
    pub redis_key: String,
    pub redis_fallback_share: f64,
}

impl std::fmt::Debug for UpstreamLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLimit")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("max_wait", &self.max_wait)
            .field("store", &self.store)
            .field("redis_url", &"<redacted>")
            .field("redis_url_from_env", &self.redis_url_from_env)
            .field("redis_key", &self.redis_key)
            .field("redis_fallback_share", &self.redis_fallback_share)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct UserLimit {
    pub rate: Rate,
    pub burst: NonZeroU32,
}

#[derive(Debug, Clone)]
pub struct Cors {
    /// Exact origins, ASCII-lowercased scheme and host (`https://app.example.com`).
    pub allowed_origins: Vec<String>,
    pub allowed_headers: Vec<HeaderName>,
    pub max_age: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub outseta: Outseta,
    pub server: Server,
    pub auth: Auth,
    pub cache: Cache,
    pub upstream_limit: UpstreamLimit,
    pub user_limit: UserLimit,
    pub cors: Cors,
    pub rules: Arc<RuleSet>,
    /// Non-fatal notes (e.g. an `http://` upstream), printed by `check` and logged by `serve`.
    pub warnings: Vec<String>,
    /// The file this came from, if any (for reload and messages).
    pub path: Option<PathBuf>,
}

impl Config {
    /// Parses and validates TOML text. `source` names it in messages.
    pub fn from_toml(text: &str, source: &str) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let file = match file::read(text, &mut problems) {
            Ok(f) => f,
            Err(e) => {
                return Err(ConfigError {
                    source: source.to_string(),
                    problems: vec![e],
                });
            }
        };
        let config = validate::validate(file, &mut problems);
        match config {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(ConfigError {
                source: source.to_string(),
                problems,
            }),
        }
    }

    /// Reads and validates a file, then applies the environment's overrides
    /// ([`Config::override_redis_url`] from `OUTSETA_REDIS_URL(_FILE)`). Blocking reads: call
    /// from startup or `spawn_blocking`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: source.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        let mut c = Self::from_toml(&text, &source)?;
        c.path = Some(path.to_path_buf());
        match secrets::redis_url_from_env() {
            Ok(Some(url)) => c.override_redis_url(url),
            Ok(None) => {}
            Err(e) => {
                return Err(ConfigError {
                    source,
                    problems: vec![e],
                });
            }
        }
        Ok(c)
    }

    /// Replaces `[upstream_limit].redis_url` (from the environment: a URL with a password
    /// belongs in a Secret, not in `gateway.toml`).
    pub fn override_redis_url(&mut self, url: String) {
        self.upstream_limit.redis_url = url;
        self.upstream_limit.redis_url_from_env = true;
    }

    /// Whether some rule forwards with the API key (then the key is required at startup).
    pub fn needs_api_key(&self) -> bool {
        self.rules
            .rules()
            .iter()
            .any(|r| r.credential == crate::rules::Credential::ApiKey)
    }
}

#[cfg(test)]
mod tests;
