//! The configuration a request sees: one `Arc<Snapshot>`, loaded once per request from
//! [`Live`] (by [`super::load_snapshot`]) and kept in the request's context, so a request never
//! mixes two configs.
//!
//! Stateful components (token caches, JWKS, the response cache, the budget, the connection
//! pool) live outside the snapshot, so swapping it (reload) keeps them.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::config::Config;

/// Precomputed CORS header values.
#[derive(Debug)]
pub struct CorsPolicy {
    pub origins: Vec<String>,
    pub allow_headers: HeaderValue,
    pub max_age: HeaderValue,
}

#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub cors: CorsPolicy,
}

impl Snapshot {
    pub fn new(config: Arc<Config>) -> Self {
        let headers: Vec<&str> = config
            .cors
            .allowed_headers
            .iter()
            .map(|h| h.as_str())
            .collect();
        let cors = CorsPolicy {
            origins: config.cors.allowed_origins.clone(),
            allow_headers: HeaderValue::from_str(&headers.join(", "))
                .unwrap_or(HeaderValue::from_static("authorization")),
            max_age: HeaderValue::from(config.cors.max_age.as_secs()),
        };
        Self { config, cors }
    }
}

/// The live snapshot; `replace` swaps it atomically.
#[derive(Debug)]
pub struct Live(ArcSwap<Snapshot>);

impl Live {
    pub fn new(s: Snapshot) -> Self {
        Self(ArcSwap::from_pointee(s))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub fn replace(&self, next: Snapshot) {
        self.0.store(Arc::new(next));
    }
}
