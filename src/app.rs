//! Wiring: `Config` → components → the proxy stack; [`bind`] the listeners, then
//! [`Bound::serve`] until shutdown.
//!
//! Binding is separate from serving so callers (tests, `demo`) learn the real addresses of
//! `127.0.0.1:0` listeners before traffic starts.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;

use crate::admin::{self, Health};
use crate::auth::jwks::Jwks;
use crate::auth::verify::Verifier;
use crate::budget::Budget;
use crate::cache::ResponseCache;
use crate::config::Config;
use crate::config::secrets::ApiCredential;
use crate::limits::user::{self, UserLimiter};
use crate::proxy::{
    self,
    forward::Forward,
    snapshot::{Live, Snapshot},
};
use crate::server;
use crate::telemetry;
use crate::upstream;

/// Things that do not come from the config file.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// The API credential (from the environment in `main`).
    pub api: Option<ApiCredential>,
    /// Extra trusted roots for upstream TLS (tests use a private CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "a rule uses credential \"api_key\" but OUTSETA_API_KEY/OUTSETA_API_SECRET (or their _FILE variants) are not set"
    )]
    MissingApiKey,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream client: {0}")]
    Client(String),
    #[error(transparent)]
    Budget(#[from] crate::budget::redis::BadUrl),
}

/// Listeners bound, components built, nothing served yet.
pub struct Bound {
    listener: TcpListener,
    admin: TcpListener,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    live: Arc<Live>,
    health: Arc<Health>,
    jwks: Arc<Jwks>,
    verifier: Arc<Verifier>,
    cache: Arc<ResponseCache>,
    user_limit: Arc<UserLimiter>,
    forward: Forward,
    refresh_every: Duration,
    config_path: Option<std::path::PathBuf>,
    api_key_present: bool,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("addr", &self.addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

/// Builds every component and binds both listeners.
pub async fn bind(config: Config, opts: Options) -> Result<Bound, StartError> {
    telemetry::metrics::install();
    if config.needs_api_key() && opts.api.is_none() {
        return Err(StartError::MissingApiKey);
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let listener =
        crate::server::listen(config.server.listen).map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
    let admin =
        crate::server::listen(config.server.admin_listen).map_err(|source| StartError::Bind {
            addr: config.server.admin_listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.listen,
        source,
    })?;
    let admin_addr = admin.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.admin_listen,
        source,
    })?;

    let client = upstream::client(&opts.extra_roots, config.server.upstream_timeout)
        .map_err(StartError::Client)?;
    let jwks = Arc::new(Jwks::new(
        config.outseta.jwks_url.clone(),
        client.clone(),
        config.server.upstream_timeout,
    ));
    let verifier = Arc::new(Verifier::new(
        jwks.clone(),
        &config.outseta.issuer,
        &config.outseta.audience,
        config.auth.leeway,
        config.auth.jwks_refresh,
    ));
    let refresh_every = config.auth.jwks_refresh;
    let config_path = config.path.clone();
    let api_key_present = opts.api.is_some();
    // Built once: `max_size` takes effect at startup; the cache survives reloads.
    let cache = Arc::new(ResponseCache::new(config.cache.max_size));
    // Budget and per-user limit live outside the snapshot: they survive reloads.
    let budget = Budget::new(&config.upstream_limit)?;
    let user_limit = Arc::new(UserLimiter::new(&config.user_limit));
    let config = Arc::new(config);
    let live = Arc::new(Live::new(Snapshot::new(config)));
    let health = Arc::new(Health::new(jwks.clone()).with_budget(budget.clone()));
    let forward = Forward::new(client, opts.api).with_budget(budget);
    Ok(Bound {
        listener,
        admin,
        addr,
        admin_addr,
        live,
        health,
        jwks,
        verifier,
        cache,
        user_limit,
        forward,
        refresh_every,
        config_path,
        api_key_present,
    })
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The live configuration (for reload).
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// The response cache (shared with the admin purge endpoint; tests inspect it).
    pub fn cache(&self) -> Arc<ResponseCache> {
        self.cache.clone()
    }

    /// Serves until `shutdown` resolves, then drains: `/readyz` turns 503, the listener
    /// closes, in-flight requests get `shutdown_grace`.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let snapshot = self.live.snapshot();
        let server_cfg = &snapshot.config.server;
        let limits = server::Limits {
            max_header_bytes: server_cfg.max_header_bytes,
            header_read_timeout: server_cfg.header_read_timeout,
            max_connections: server_cfg.max_connections,
            idle_timeout: server_cfg.idle_timeout,
        };
        let grace = server_cfg.shutdown_grace;
        drop(snapshot);

        let refresher = tokio::spawn(self.jwks.clone().run_refresher(self.refresh_every));
        // Reload on SIGHUP or a change of the file (only when the config came from a file).
        let reloader = self.config_path.clone().map(|path| {
            tokio::spawn(
                crate::reload::Reloader::new(path, self.live.clone(), self.api_key_present).run(),
            )
        });
        let housekeeping = tokio::spawn(user::housekeeping(self.user_limit.clone()));
        let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let cache_upkeep = self.cache.spawn_maintenance(Duration::from_secs(1));
        let metrics_upkeep = crate::telemetry::metrics::spawn_upkeep();
        let admin = tokio::spawn(admin::serve(
            self.admin,
            self.health.clone(),
            self.cache.clone(),
            limits,
            async move {
                let _ = admin_stop_rx.await;
            },
        ));

        let svc = proxy::stack(proxy::Parts {
            live: self.live.clone(),
            verifier: self.verifier,
            cache: self.cache,
            user_limit: self.user_limit,
            forward: self.forward,
        });
        let runtime = tokio::runtime::Handle::current();
        let flavor = match runtime.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => "current_thread",
            _ => "multi_thread",
        };
        tracing::info!(
            listen = %self.addr,
            admin = %self.admin_addr,
            runtime = flavor,
            workers = runtime.metrics().num_workers(),
            "outseta-gateway serving"
        );
        let health = self.health.clone();
        let shutdown = async move {
            shutdown.await;
            health.draining.store(true, Ordering::Release);
            tracing::info!("shutting down: draining in-flight requests");
        };
        server::serve(self.listener, svc, limits, shutdown, grace).await;
        refresher.abort();
        if let Some(r) = reloader {
            r.abort();
        }
        cache_upkeep.abort();
        metrics_upkeep.abort();
        housekeeping.abort();
        let _ = admin_stop_tx.send(());
        let _ = admin.await;
        tracing::info!("stopped");
    }
}
