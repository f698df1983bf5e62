//! `outseta-gateway demo`: the built-in Outseta simulator on a free port and a
//! gateway in front of it with `config/demo.toml` (the production rule set), in one process,
//! until Ctrl-C.
//!
//! [`start`] is also what the end-to-end client tests use, so the demo and the tests run the
//! same wiring.
//!
//! # Guarantees
//! - The simulator's API key is random per run and never printed: a client of the demo, like
//!   a real SPA, only ever holds user tokens. The gateway gets the key programmatically (no
//!   environment variables needed).
//! - The gateway's `[outseta]` upstream, JWKS URL, issuer and audience are the simulator's
//!   real ones, whatever the file says.
//! - The configuration does not hot-reload (a reload would read the file's `[outseta]` values
//!   back); restart the demo after editing the file.
//! - [`Demo::shutdown`] drains the gateway first, then stops the simulator behind it.

mod banner;

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use outseta_sim::{SeedUser, SimOptions, Simulator};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{self, Options, StartError};
use crate::config::secrets::ApiCredential;
use crate::config::{Config, ConfigError};

pub use banner::{Command, banner, commands};

/// `config/demo.toml`, built in: `demo` works from any directory.
pub const CONFIG: &str = include_str!("../../config/demo.toml");

/// The gateway's listen address when `--listen` is not given.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));

/// How long [`start`] waits for the gateway's `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The API key name the demo's simulator accepts (the secret is random).
const API_KEY: &str = "demo-key";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("simulator: {0}")]
    Simulator(io::Error),
    #[error("{0}")]
    Gateway(#[from] StartError),
    #[error("the gateway did not become ready within {0:?}")]
    NotReady(Duration),
}

/// Where the gateway listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Exactly this address; busy is an error.
    Exactly(SocketAddr),
    /// This address, or a free port on the same IP when it is busy.
    Preferred(SocketAddr),
}

/// The demo configuration: `file`'s text, or the built-in `config/demo.toml`.
pub fn load_config(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
    let mut config = match file {
        Some(path) => Config::load(path)?,
        None => Config::from_toml(CONFIG, "config/demo.toml (built in)")?,
    };
    // No hot reload: it would put the file's [outseta] values back (see the module docs).
    config.path = None;
    Ok(config)
}

/// Points `config` at `sim`: upstream, JWKS URL, issuer and audience; drops the warnings
/// about the file's own (plain http) simulator URLs.
#[allow(clippy::expect_used)] // `http://` + a SocketAddr (+ a fixed path) is always a valid URI
pub fn point_at(config: &mut Config, sim: &Simulator) {
    config.outseta.upstream = sim
        .base_url()
        .parse::<Uri>()
        .expect("http://<socket address> is a URI");
    config.outseta.jwks_url = sim
        .jwks_url()
        .parse::<Uri>()
        .expect("http://<socket address>/.well-known/jwks is a URI");
    config.outseta.issuer = sim.issuer();
    config.outseta.audience = sim.audience();
    config
        .warnings
        .retain(|w| !(w.starts_with("[outseta]") && w.contains("http://")));
}

/// A demo user: a seeded person and a token minted at start.
#[derive(Debug, Clone)]
pub struct DemoUser {
    pub user: SeedUser,
    pub token: String,
}

/// The simulator and the gateway, serving.
pub struct Demo {
    pub gateway: SocketAddr,
    pub admin: SocketAddr,
    /// `http://127.0.0.1:PORT` of the simulator.
    pub simulator: String,
    /// Set when [`Listen::Preferred`] was busy.
    pub fallback_from: Option<SocketAddr>,
    /// The CORS origins the gateway allows.
    pub cors_origins: Vec<String>,
    /// Every seeded user with a fresh token.
    pub users: Vec<DemoUser>,
    stop_gateway: Option<oneshot::Sender<()>>,
    stop_simulator: Option<oneshot::Sender<()>>,
    gateway_task: Option<JoinHandle<()>>,
    simulator_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("gateway", &self.gateway)
            .field("admin", &self.admin)
            .field("simulator", &self.simulator)
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// `http://<gateway>`
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway)
    }

    /// The two users the banner shows: the first seeded person and the first one of another
    /// account (so "the other user's person" is also another customer's).
    pub fn pair(&self) -> Option<(&DemoUser, &DemoUser)> {
        let first = self.users.first()?;
        let other = self
            .users
            .iter()
            .find(|u| u.user.account_uid != first.user.account_uid)?;
        Some((first, other))
    }

    /// Drains the gateway, then stops the simulator.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop_gateway.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.gateway_task.take() {
            let _ = t.await;
        }
        if let Some(s) = self.stop_simulator.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.simulator_task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for s in [self.stop_gateway.take(), self.stop_simulator.take()]
            .into_iter()
            .flatten()
        {
            let _ = s.send(());
        }
    }
}

/// Starts the simulator (127.0.0.1, free port) and the gateway in front of it with `config`,
/// and waits until the gateway is ready (its JWKS fetched).
pub async fn start(mut config: Config, listen: Listen) -> Result<Demo, DemoError> {
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let sim = outseta_sim::bind(SimOptions {
        api_key: API_KEY.into(),
        api_secret: secret.clone(),
        ..SimOptions::default()
    })
    .await
    .map_err(DemoError::Simulator)?;
    point_at(&mut config, &sim);
    let (addr, fallback) = match listen {
        Listen::Exactly(a) => (a, false),
        Listen::Preferred(a) => (a, true),
    };
    config.server.listen = addr;
    let cors_origins = config.cors.allowed_origins.clone();
    let api = ApiCredential::new(API_KEY, &secret).map_err(|e| {
        DemoError::Simulator(io::Error::other(format!("the generated API key: {e}")))
    })?;
    let (bound, fallback_from) = bind_gateway(config, api, fallback).await?;

    let users = sim
        .users()
        .into_iter()
        .filter_map(|user| {
            let token = sim.mint_token(&user.email)?;
            Some(DemoUser { user, token })
        })
        .collect();
    let simulator = sim.base_url();
    let (stop_simulator, sim_stopped) = oneshot::channel::<()>();
    let simulator_task = tokio::spawn(sim.serve(async move {
        let _ = sim_stopped.await;
    }));
    let gateway = bound.local_addr();
    let admin = bound.admin_addr();
    let (stop_gateway, gw_stopped) = oneshot::channel::<()>();
    let gateway_task = tokio::spawn(bound.serve(async move {
        let _ = gw_stopped.await;
    }));
    let demo = Demo {
        gateway,
        admin,
        simulator,
        fallback_from,
        cors_origins,
        users,
        stop_gateway: Some(stop_gateway),
        stop_simulator: Some(stop_simulator),
        gateway_task: Some(gateway_task),
        simulator_task: Some(simulator_task),
    };
    wait_ready(admin).await?;
    Ok(demo)
}

/// Binds the gateway; a busy admin port (the file's choice) always falls back to a free one,
/// a busy public port only when `fallback` is set. Returns the address given up, if any.
async fn bind_gateway(
    mut config: Config,
    api: ApiCredential,
    fallback: bool,
) -> Result<(app::Bound, Option<SocketAddr>), StartError> {
    let mut fallback_from = None;
    loop {
        let opts = Options {
            api: Some(api.clone()),
            ..Options::default()
        };
        match app::bind(config.clone(), opts).await {
            Ok(b) => return Ok((b, fallback_from)),
            Err(StartError::Bind { addr, source })
                if source.kind() == io::ErrorKind::AddrInUse && addr.port() != 0 =>
            {
                if addr == config.server.admin_listen {
                    tracing::info!(%addr, "admin port busy; using a free port");
                    config.server.admin_listen.set_port(0);
                } else if addr == config.server.listen && fallback {
                    fallback_from = Some(addr);
                    config.server.listen.set_port(0);
                } else {
                    return Err(StartError::Bind { addr, source });
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Polls `GET /readyz` on the admin listener until 200.
async fn wait_ready(admin: SocketAddr) -> Result<(), DemoError> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: Uri = format!("http://{admin}/readyz")
        .parse()
        .map_err(|_| DemoError::NotReady(Duration::ZERO))?;
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if let Ok(rsp) = client.get(uri.clone()).await
            && rsp.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(DemoError::NotReady(READY_TIMEOUT))
}

/// Runs the demo until SIGINT/SIGTERM: start, print the banner, wait, shut down.
pub async fn run(config: Config, listen: Listen, config_name: &str) -> Result<(), DemoError> {
    let demo = start(config, listen).await?;
    print!("{}", banner(&demo, config_name));
    let _ = io::stdout().flush();
    tracing::info!(gateway = %demo.gateway, simulator = %demo.simulator, "demo ready");
    crate::shutdown::signal().await;
    demo.shutdown().await;
    println!("demo stopped");
    Ok(())
}
