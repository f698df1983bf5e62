//! Configuration: `gateway.toml` → [`file::FileConfig`] (serde, no logic) → [`validate`]
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

#[derive(Debug, Clone)]
pub struct UpstreamLimit {
    pub rate: Rate,
    pub burst: NonZeroU32,
    pub max_wait: Duration,
    pub store: Store,
    pub redis_url: String,
    pub redis_key: String,
    pub redis_fallback_share: f64,
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

    /// Reads and validates a file (blocking read; call from startup or `spawn_blocking`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: source.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        let mut c = Self::from_toml(&text, &source)?;
        c.path = Some(path.to_path_buf());
        Ok(c)
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
