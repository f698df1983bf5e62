//! Starting the gateway in-process on 127.0.0.1:0 against a mock Outseta.

use std::net::SocketAddr;
use std::sync::Arc;

use outseta_gateway::Config;
use outseta_gateway::cache::ResponseCache;
use outseta_gateway::config::secrets::ApiCredential;

use super::mock::MockOutseta;

pub const API_KEY: &str = "test-key-7f3a";
pub const API_SECRET: &str = "test-secret-9c1e";
pub const ISSUER: &str = "http://test.outseta.com";
pub const AUDIENCE: &str = "test.outseta.com";

pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The gateway's response cache, for tests that inspect it.
    pub cache: Arc<ResponseCache>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The `[outseta]` and `[server]` sections pointing at `mock`, followed by `extra` (rules…).
pub fn config_text(mock: &MockOutseta, extra: &str) -> String {
    format!(
        r#"
[outseta]
upstream = "{base}"
jwks_url = "{jwks}"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"

[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
request_timeout = "5s"
upstream_timeout = "2s"
max_request_body = "64KiB"
max_header_bytes = "8KiB"
shutdown_grace = "5s"

{extra}
"#,
        base = mock.base_url(),
        jwks = mock.jwks_url()
    )
}

/// A rule set covering the behaviours under test.
pub const RULES: &str = r#"
[cors]
allowed_origins = ["https://app.example.com"]

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"

[[rule]]
name = "own subscriptions"
methods = ["GET"]
path = "/api/v1/billing/subscriptions"
query_allow = ["fields", "limit", "offset", "orderBy"]
query_set = { "Account.Uid" = "claims['outseta:accountUid']" }

[[rule]]
name = "profile"
methods = ["GET", "PUT"]
path = "/api/v1/profile"
credential = "user"
body_allow = ["FirstName", "LastName"]

[[rule]]
name = "open support case"
methods = ["POST"]
path = "/api/v1/support/cases"
body_allow = ["Subject", "Body"]
body_set = { "FromPerson" = "{'Uid': claims.sub}" }

[[rule]]
name = "own invoice"
methods = ["GET"]
path = "/api/v1/billing/invoices/{uid}"
response_when = "response.Subscription.Account.Uid == claims['outseta:accountUid']"

[[rule]]
name = "login"
methods = ["POST"]
path = "/api/v1/tokens/{*rest}"
auth = "none"
credential = "none"

[[rule]]
name = "plans"
methods = ["GET"]
path = "/api/v1/billing/plans"
auth = "optional"
credential = "none"

[[rule]]
name = "slow"
methods = ["GET", "POST"]
path = "/api/v1/slow/{*rest}"
"#;

/// The test API key, and the mock's CA when it serves TLS.
pub fn options(mock: &MockOutseta) -> outseta_gateway::Options {
    outseta_gateway::Options {
        api: Some(ApiCredential::new(API_KEY, API_SECRET).unwrap()),
        extra_roots: mock
            .tls
            .as_ref()
            .map(|t| vec![t.ca_der.clone()])
            .unwrap_or_default(),
    }
}

impl Gateway {
    pub async fn start(mock: &MockOutseta, extra: &str) -> Self {
        let config =
            Config::from_toml(&config_text(mock, extra), "test").expect("valid test config");
        Self::start_with(mock, config).await
    }

    pub async fn start_with(mock: &MockOutseta, config: Config) -> Self {
        let bound = outseta_gateway::bind(config, options(mock))
            .await
            .expect("bind");
        let addr = bound.local_addr();
        let admin = bound.admin_addr();
        let cache = bound.cache();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(async move {
            let _ = stopped.await;
        }));
        let gw = Self {
            addr,
            admin,
            cache,
            stop: Some(stop),
            task: Some(task),
        };
        gw.wait_ready().await;
        gw
    }

    /// Waits until `/readyz` is 200 (the JWKS was fetched).
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            let r = super::client::get(&format!("http://{}/readyz", self.admin), &[]).await;
            if r.status == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("gateway never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("gateway task panicked");
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
