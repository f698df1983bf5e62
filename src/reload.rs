//! Hot reload: `SIGHUP` or a change of the config file reloads config and rules.
//!
//! # Guarantees
//! - The new file is parsed and validated completely before anything changes; an invalid one
//!   is refused with an error log and the old configuration keeps serving.
//! - A reload swaps one [`Snapshot`]; requests in flight keep the snapshot they started with.
//! - Stateful components live outside the snapshot, so the token caches, the JWKS keys, the
//!   response cache, the budget and pooled connections survive.
//! - Settings bound at start (listeners, the Outseta URLs and token audience, cache size,
//!   `[upstream_limit]` and `[user_limit]`) are not changed by a reload; a change to them is logged as needing a
//!   restart and the rest of the new configuration is applied.
//! - File changes are debounced ([`DEBOUNCE`]) and deduplicated by content, so an editor's
//!   burst of writes or Kubernetes' ConfigMap symlink swap is one reload. The parent
//!   directory is watched, which also catches ConfigMap updates (they replace a symlink);
//!   events on any other file in it (a log file, an editor's swap file) wake nothing, nor
//!   does opening or reading the config file (each reload reads it), and the watcher crate's
//!   own per-event trace logs are capped (see `telemetry::init`).
//!
//! Every attempt counts in `gateway_config_reloads_total{result="ok"|"error"|"unchanged"}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::proxy::snapshot::{Live, Snapshot};
use crate::telemetry::metrics as m;

pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// What a reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied { restart_needed: Vec<String> },
    Unchanged,
    Refused(String),
}

/// Reloads configuration from one file into a [`Live`] snapshot.
pub struct Reloader {
    path: PathBuf,
    live: Arc<Live>,
    api_key_present: bool,
    last_digest: Option<[u8; 32]>,
}

impl Reloader {
    pub fn new(path: PathBuf, live: Arc<Live>, api_key_present: bool) -> Self {
        let last_digest = std::fs::read(&path).ok().map(|b| Sha256::digest(&b).into());
        Self {
            path,
            live,
            api_key_present,
            last_digest,
        }
    }

    /// One reload attempt. `force` reloads even when the content is unchanged (SIGHUP).
    pub async fn reload(&mut self, force: bool) -> Outcome {
        let outcome = self.try_reload(force).await;
        let result = match &outcome {
            Outcome::Applied { restart_needed } => {
                for what in restart_needed {
                    tracing::warn!(setting = %what, "configuration changed a setting that takes effect only after a restart");
                }
                tracing::info!(path = %self.path.display(), "configuration reloaded");
                "ok"
            }
            Outcome::Unchanged => "unchanged",
            Outcome::Refused(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "configuration reload refused; the previous configuration keeps serving");
                "error"
            }
        };
        metrics::counter!(m::CONFIG_RELOADS, "result" => result).increment(1);
        outcome
    }

    async fn try_reload(&mut self, force: bool) -> Outcome {
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(b) => b,
            Err(e) => return Outcome::Refused(format!("cannot read {}: {e}", self.path.display())),
        };
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if !force && self.last_digest == Some(digest) {
            return Outcome::Unchanged;
        }
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => return Outcome::Refused("the file is not UTF-8".into()),
        };
        let mut next = match Config::from_toml(&text, &self.path.display().to_string()) {
            Ok(c) => c,
            Err(e) => return Outcome::Refused(e.problems.join("; ")),
        };
        if next.needs_api_key() && !self.api_key_present {
            return Outcome::Refused(
                "a rule uses credential \"api_key\" but no API key was configured at start".into(),
            );
        }
        next.path = Some(self.path.clone());
        let current = self.live.snapshot();
        let running = &current.config.upstream_limit;
        if running.redis_url_from_env {
            // Read from the environment at start; the environment does not change.
            next.override_redis_url(running.redis_url.clone());
        }
        let restart_needed = restart_needed(&current.config, &next);
        self.live.replace(Snapshot::new(Arc::new(next)));
        self.last_digest = Some(digest);
        Outcome::Applied { restart_needed }
    }

    /// Reloads on SIGHUP (always) and on file changes (debounced, if content changed) until
    /// the task is aborted.
    pub async fn run(mut self) {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let _watcher = watch(&self.path, tx);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = hangup => {
                    tracing::info!("SIGHUP received: reloading configuration");
                    self.reload(true).await;
                }
                Some(()) = rx.recv() => {
                    // Debounce: wait until the file has been quiet for DEBOUNCE.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                    self.reload(false).await;
                }
            }
        }
    }
}

/// Watches the file's directory; every event sends a (coalesced) wake-up.
fn watch(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_os_string());
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Opening and reading the file (the reload itself reads it) is no change; only a
            // write that completed is.
            if let notify::EventKind::Access(access) = event.kind
                && access != notify::event::AccessKind::Close(notify::event::AccessMode::Write)
            {
                return;
            }
            // Our file, or the ConfigMap `..data` symlink swap, or anything we cannot attribute.
            let relevant = event.paths.is_empty()
                || event.paths.iter().any(|p| {
                    p.file_name().is_some_and(|f| {
                        Some(f.to_os_string()) == name || f.to_string_lossy().starts_with("..")
                    })
                });
            if relevant {
                let _ = tx.try_send(());
            }
        }) {
            Ok(w) => w,
            Err(error) => {
                tracing::warn!(%error, "cannot watch the config file; reload with SIGHUP");
                return None;
            }
        };
    if let Err(error) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(%error, dir = %dir.display(), "cannot watch the config directory; reload with SIGHUP");
        return None;
    }
    Some(watcher)
}

/// Settings a reload cannot change, named when they differ.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, changed: bool| {
        if changed {
            out.push(name.to_string());
        }
    };
    check("server.listen", old.server.listen != new.server.listen);
    check(
        "server.admin_listen",
        old.server.admin_listen != new.server.admin_listen,
    );
    check(
        "server.max_header_bytes",
        old.server.max_header_bytes != new.server.max_header_bytes,
    );
    check(
        "server.shutdown_grace",
        old.server.shutdown_grace != new.server.shutdown_grace,
    );
    check(
        "outseta.jwks_url",
        old.outseta.jwks_url != new.outseta.jwks_url,
    );
    check("outseta.issuer", old.outseta.issuer != new.outseta.issuer);
    check(
        "outseta.audience",
        old.outseta.audience != new.outseta.audience,
    );
    check("auth.leeway", old.auth.leeway != new.auth.leeway);
    check(
        "auth.jwks_refresh",
        old.auth.jwks_refresh != new.auth.jwks_refresh,
    );
    check("cache.max_size", old.cache.max_size != new.cache.max_size);
    check(
        "upstream_limit.store",
        old.upstream_limit.store != new.upstream_limit.store,
    );
    check(
        "upstream_limit.redis_url",
        old.upstream_limit.redis_url != new.upstream_limit.redis_url,
    );
    // The budget and the per-user limiter are built once (their state must survive reloads).
    let (ou, nu) = (&old.upstream_limit, &new.upstream_limit);
    check("upstream_limit.rate", ou.rate != nu.rate);
    check("upstream_limit.burst", ou.burst != nu.burst);
    check("upstream_limit.max_wait", ou.max_wait != nu.max_wait);
    check("upstream_limit.redis_key", ou.redis_key != nu.redis_key);
    check(
        "upstream_limit.redis_fallback_share",
        ou.redis_fallback_share != nu.redis_fallback_share,
    );
    check(
        "user_limit.rate",
        old.user_limit.rate != new.user_limit.rate,
    );
    check(
        "user_limit.burst",
        old.user_limit.burst != new.user_limit.burst,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::from_toml(
            &format!(
                "[outseta]\ndomain = \"x.outseta.com\"\n{extra}\n[[rule]]\nname = \"r\"\nmethods = [\"GET\"]\npath = \"/api/v1/profile\"\ncredential = \"user\"\n"
            ),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn budget_and_user_limit_settings_need_a_restart() {
        let old = config("");
        assert!(restart_needed(&old, &config("")).is_empty());
        let new = config(
            "[upstream_limit]\nrate = \"2/s\"\nmax_wait = \"3s\"\n[user_limit]\nburst = 5\n",
        );
        assert_eq!(
            restart_needed(&old, &new),
            [
                "upstream_limit.rate",
                "upstream_limit.max_wait",
                "user_limit.burst"
            ]
        );
    }

    /// `OUTSETA_REDIS_URL` is read once at start (it may carry a password and the
    /// environment does not change): a reload keeps it, whatever the file says, and does not
    /// report it as a change needing a restart.
    #[tokio::test]
    async fn a_reload_keeps_the_redis_url_from_the_environment() {
        let dir = std::env::temp_dir().join(format!("ogw-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        let text = |extra: &str| {
            format!(
                "[outseta]\ndomain = \"x.outseta.com\"\n{extra}\n[[rule]]\nname = \"r\"\nmethods = [\"GET\"]\npath = \"/api/v1/profile\"\ncredential = \"user\"\n"
            )
        };
        std::fs::write(&path, text("")).unwrap();
        let mut running = config("");
        running.override_redis_url("redis://:s3cret@redis.internal:6379/0".into());
        let live = Arc::new(Live::new(Snapshot::new(Arc::new(running))));
        let mut reloader = Reloader::new(path.clone(), live.clone(), false);

        for file_says in [
            "",
            "[upstream_limit]\nredis_url = \"redis://elsewhere:6379\"\n",
        ] {
            std::fs::write(&path, text(file_says)).unwrap();
            let outcome = reloader.reload(true).await;
            assert_eq!(
                outcome,
                Outcome::Applied {
                    restart_needed: vec![]
                }
            );
            let now = live.snapshot();
            assert_eq!(
                now.config.upstream_limit.redis_url,
                "redis://:s3cret@redis.internal:6379/0"
            );
            assert!(now.config.upstream_limit.redis_url_from_env);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
