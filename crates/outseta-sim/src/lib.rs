//! The Outseta simulator (the gateway's docs/behaviour.md, "Simulator"): a local stand-in for
//! one Outseta domain, for demos, SPA development and tests. `outseta-gateway simulate` runs
//! it alone; tests and `outseta-gateway demo` use [`bind`] and [`Simulator::serve`].
//!
//! What it serves (all JSON, Outseta's shapes, seeded data from [`seed`]):
//!
//! | route | auth |
//! | --- | --- |
//! | `GET /.well-known/jwks` | none |
//! | `POST /api/v1/tokens`, `POST /tokens` | none (password grant) or the API key (impersonation: a token for any username, no password) |
//! | `GET`/`PUT /api/v1/profile`, `PUT /api/v1/profile/password` | the user's bearer token only |
//! | `GET /api/v1/billing/plans[/{uid}]`, `GET /api/v1/billing/planfamilies[/{uid}]` | none |
//! | `GET /api/v1/billing/subscriptions`, `GET /api/v1/billing/invoices` | the API key (everything) or a bearer token (auto-scoped to the caller, as Outseta does) |
//! | `GET`/`PUT /api/v1/crm/people/{uid}`, `GET /api/v1/crm/people`, same for `crm/accounts`; `GET /api/v1/billing/subscriptions/{uid}`, `GET /api/v1/billing/invoices/{uid}`, `GET /api/v1/billing/transactions/{accountUid}`; `GET`/`POST /api/v1/support/cases`, `GET /api/v1/support/cases/{uid}`, `POST /api/v1/support/cases/{uid}/clientresponse/{comment}` (the opener's reply: the case is answered, with the reply as its `LastCaseHistory`) | the API key only; a bearer token is 401 (a choice: Outseta's behaviour for bearers there is undocumented) |
//! | `GET /__sim/stats` (counts, 429s, API-key arrival times), `POST /__sim/reset-stats` | none; not counted, not delayed |
//!
//! # Guarantees
//! - The simulator mirrors Outseta as its public API reference documents it; where Outseta's
//!   behaviour is unknown the choice is documented on the module that makes it. It does not
//!   bend to make a gateway in front of it look good: the API key mints tokens for anyone,
//!   admin lists return every customer's data, `fields` and filters behave like Outseta's.
//! - Requests with the valid API key are limited to `rate`/s (burst `rate`) and answered 429
//!   beyond it, without `Retry-After` (Outseta documents none).
//! - Writes change the in-memory data; the data set is bounded (see the `store` module).
//! - This crate does not depend on the gateway; the gateway uses it only for its `demo` and
//!   `simulate` commands (and its tests).
//!
//! # Choices where Outseta's behaviour is undocumented
//! - 401 bodies are ASP.NET's `{"Message": "Authorization has been denied for this request."}`
//!   with no `WWW-Authenticate`; 404/405 use the same `{"Message"}` shape; 429 carries no
//!   `Retry-After`.
//! - `POST /tokens` with bad credentials is 400 `text/plain` `invalid_grant`; a `grant_type`
//!   other than `password` is 400 `unsupported_grant_type`; a wrong API key is 401.
//! - `PUT /profile/password` answers 200 with an empty body (as the real client expects).
//! - Filters on unknown properties are ignored (not 400); repeated query keys are joined
//!   with `,` and then compared as one literal value; non-Uid strings compare
//!   case-insensitively, Uids exactly; a bare reference in `fields` (`fields=Account`) reads
//!   as `Account.*`; unselected lists under `*` are `null`.
//! - Tokens last [`TOKEN_LIFETIME_SECS`] (Outseta's current `expires_in`), and are bound to
//!   the person's first account.
//! - Paths match case-insensitively with an optional trailing `/`, as ASP.NET routes.

#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod auth;
mod body;
mod handlers;
mod keys;
mod limit;
mod model;
mod query;
mod render;
mod respond;
mod routes;
pub mod seed;
mod server;
mod service;
mod stats;
mod store;
mod tokens;
mod writes;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::net::TcpListener;

use self::auth::ApiKey;
use self::keys::Signer;
use self::limit::KeyLimiter;
use self::model::Kind;
use self::stats::Stats;
use self::store::Store;

pub use self::tokens::LIFETIME_SECS as TOKEN_LIFETIME_SECS;

/// How to run the simulator.
#[derive(Clone)]
pub struct SimOptions {
    pub listen: SocketAddr,
    /// API-key requests per second (burst of the same size); 0 disables the limit.
    pub rate: u32,
    /// Added to every response.
    pub latency: Duration,
    pub api_key: String,
    pub api_secret: String,
    /// Host used in `iss` (`http://<host>`) and `aud` (`<host>`); default: the bound address,
    /// e.g. `127.0.0.1:8800`.
    pub host: Option<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate: 4,
            latency: Duration::ZERO,
            api_key: "sim-key".into(),
            api_secret: "sim-secret".into(),
            host: None,
        }
    }
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("listen", &self.listen)
            .field("rate", &self.rate)
            .field("latency", &self.latency)
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .field("host", &self.host)
            .finish()
    }
}

/// A seeded person who can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedUser {
    pub email: String,
    pub password: String,
    pub name: String,
    pub person_uid: String,
    pub account_uid: String,
    pub account_name: String,
    pub is_primary: bool,
}

/// Shared by every request.
pub(crate) struct State {
    store: RwLock<Store>,
    signer: Signer,
    host: String,
    issuer: String,
    audience: String,
    api: ApiKey,
    limiter: KeyLimiter,
    stats: Stats,
    latency: Duration,
}

impl State {
    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bound, not yet serving simulator.
pub struct Simulator {
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<State>,
}

/// Binds the listener, generates the signing key and seeds the data.
pub async fn bind(opts: SimOptions) -> io::Result<Simulator> {
    let listener = server::listen(opts.listen)?;
    let addr = listener.local_addr()?;
    let signer = tokio::task::spawn_blocking(Signer::generate)
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    let host = opts.host.unwrap_or_else(|| addr.to_string());
    let state = State {
        store: RwLock::new(seed::store()),
        signer,
        issuer: format!("http://{host}"),
        audience: host.clone(),
        host,
        api: ApiKey {
            key: opts.api_key,
            secret: opts.api_secret,
        },
        limiter: KeyLimiter::new(opts.rate),
        stats: Stats::default(),
        latency: opts.latency,
    };
    Ok(Simulator {
        listener,
        addr,
        state: Arc::new(state),
    })
}

impl Simulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<host>`
    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    /// `<host>`
    pub fn audience(&self) -> String {
        self.state.audience.clone()
    }

    /// The JWKS URL (`<base_url>/.well-known/jwks`).
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks", self.base_url())
    }

    /// The signing key's id (`kid` = `x5t`).
    pub fn kid(&self) -> String {
        self.state.signer.kid().to_owned()
    }

    /// Every person with their current password and the account their token is bound to.
    pub fn users(&self) -> Vec<SeedUser> {
        let store = self.state.read();
        store
            .all(Kind::Person)
            .into_iter()
            .map(|p| {
                let claims = tokens::claims(&store, p, &self.state.host, 0);
                let account_uid = claims
                    .get("outseta:accountUid")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned();
                let account_name = store
                    .get_kind(Kind::Account, &account_uid)
                    .and_then(|a| a.str("Name"))
                    .unwrap_or("")
                    .to_owned();
                SeedUser {
                    email: p.str("Email").unwrap_or("").to_owned(),
                    password: store.password(&p.uid).unwrap_or("").to_owned(),
                    name: p.str("FullName").unwrap_or("").to_owned(),
                    person_uid: p.uid.clone(),
                    account_uid,
                    account_name,
                    is_primary: claims.get("outseta:isPrimary").and_then(|v| v.as_str())
                        == Some("1"),
                }
            })
            .collect()
    }

    /// A token for `email`, exactly as a password login would return it.
    pub fn mint_token(&self, email: &str) -> Option<String> {
        let store = self.state.read();
        let person = store.person_by_email(email)?;
        tokens::mint(&store, &self.state.signer, person, &self.state.host).ok()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for up to 5 s.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let state = self.state;
        let handle =
            move |req: http::Request<hyper::body::Incoming>| service::handle(state.clone(), req);
        let limits = server::Limits {
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(120),
        };
        server::serve(
            self.listener,
            handle,
            limits,
            shutdown,
            Duration::from_secs(5),
        )
        .await;
    }
}
