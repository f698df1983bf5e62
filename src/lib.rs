//! outseta-gateway: an authenticating reverse proxy that lets browser apps call the Outseta
//! REST API safely.
//!
//! A browser sends its user's Outseta access token; the gateway verifies it ([`auth`]), applies
//! the first matching rule ([`rules`], default deny), swaps in the server-side API key and
//! answers GETs from its cache ([`cache`]) or forwards ([`proxy`]). The request path is composed once, in [`proxy::stack`].
//!
//! The binary (`src/main.rs`) only parses the command line and calls into this library; tests
//! and benches drive the same code through [`app::bind`].

#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod alloc;
pub mod app;
pub mod auth;
pub mod body;
pub mod budget;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cork;
pub mod demo;
pub mod error;
pub mod explain;
pub mod limits;
pub mod proxy;
pub mod reload;
pub mod rules;
pub mod ruletest;
pub mod server;
pub mod shutdown;
pub mod simulate;
pub mod telemetry;
pub mod units;
pub mod upstream;

pub use app::{Bound, Options, bind};
pub use config::Config;
