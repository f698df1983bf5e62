//! Shared test support: token minting, a mock Outseta (API + JWKS), the gateway in-process,
//! and a small client. Every server binds 127.0.0.1:0.
#![allow(dead_code)]

pub mod client;
pub mod demo;
pub mod gateway;
pub mod keys;
pub mod mock;
pub mod process;
pub mod redis;
pub mod sim;
pub mod static_site;
pub mod tools;

/// Logs to the test writer when `RUST_LOG` is set.
pub fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
