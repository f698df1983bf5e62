//! Per-caller limits: who a request counts against ([`key`]), the per-user limit
//! ([`user`]) and its response headers ([`headers`]).

pub mod headers;
pub mod key;
pub mod store;
pub mod user;
