//! Metric names (one place, so dashboards and tests agree) and the Prometheus recorder.
//!
//! Labels are bounded: rule names come from the config, reasons and results are fixed sets,
//! statuses are HTTP codes. No label ever carries a token, a user id or a path.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "gateway_requests_total";
pub const REQUEST_DURATION: &str = "gateway_request_duration_seconds";
pub const AUTH_FAILURES: &str = "gateway_auth_failures_total";
pub const JWKS_FETCHES: &str = "gateway_jwks_fetches_total";
pub const JWKS_KEYS: &str = "gateway_jwks_keys";
pub const UPSTREAM_DURATION: &str = "gateway_upstream_duration_seconds";
pub const UPSTREAM_REQUESTS: &str = "gateway_upstream_requests_total";
pub const RESPONSE_DENIED: &str = "gateway_response_denied_total";
pub const IN_FLIGHT: &str = "gateway_requests_in_flight";
pub const BUDGET_PERMITS: &str = "gateway_budget_permits_total";
pub const BUDGET_WAIT: &str = "gateway_budget_wait_seconds";
pub const BUDGET_QUEUE_DEPTH: &str = "gateway_budget_queue_depth";
pub const BUDGET_REJECTIONS: &str = "gateway_budget_rejections_total";
pub const BUDGET_MODE: &str = "gateway_budget_mode";
pub const BUDGET_REDIS_ERRORS: &str = "gateway_budget_redis_errors_total";
pub const UPSTREAM_429: &str = "gateway_upstream_429_total";
pub const USER_LIMITED: &str = "gateway_user_limited_total";
pub const USER_LIMIT_KEYS: &str = "gateway_user_limit_keys";
pub const CONFIG_RELOADS: &str = "gateway_config_reloads_total";
pub const CACHE_HITS: &str = "gateway_cache_hits_total";
pub const CACHE_MISSES: &str = "gateway_cache_misses_total";
pub const CACHE_COLLAPSED: &str = "gateway_cache_collapsed_total";
pub const CACHE_STALE: &str = "gateway_cache_stale_total";
pub const CACHE_STORED: &str = "gateway_cache_stored_total";
pub const CACHE_BYPASS: &str = "gateway_cache_bypass_total";
pub const CACHE_REFRESHES: &str = "gateway_cache_refreshes_total";
pub const CACHE_EVICTIONS: &str = "gateway_cache_evictions_total";
pub const CACHE_BYTES: &str = "gateway_cache_bytes";
pub const CACHE_ENTRIES: &str = "gateway_cache_entries";

const BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle (`None` if another
/// recorder was installed first by an embedding program).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// How often recorded histogram samples are folded into their buckets. The exporter keeps
/// every sample until then (it is built with `install_recorder`, which leaves upkeep to its
/// caller), so without this an unscraped gateway would grow by ≈ 20 bytes per request, without
/// bound. Between two runs the samples of one period are held: ≈ 2 MiB at 100k requests per
/// second.
pub const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs [`upkeep`] every [`UPKEEP_EVERY`] until the task is aborted.
pub fn spawn_upkeep() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            upkeep();
        }
    })
}

/// Folds the histogram samples recorded since the last call into their buckets.
pub fn upkeep() {
    if let Some(h) = install() {
        h.run_upkeep();
    }
}

/// Renders the Prometheus text exposition (rendering folds in pending samples itself).
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS, "Requests answered, by rule, decision and status");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer a request (until the response head)"
    );
    describe_counter!(AUTH_FAILURES, "Refused tokens, by reason");
    describe_counter!(JWKS_FETCHES, "JWKS fetches, by result");
    describe_gauge!(JWKS_KEYS, "Usable keys in the live JWKS");
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time to the upstream response head, by rule"
    );
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Upstream calls, by rule, credential and status (or error)"
    );
    describe_counter!(
        RESPONSE_DENIED,
        "Responses withheld by response_when, by rule"
    );
    describe_gauge!(IN_FLIGHT, "Requests being handled");
    describe_counter!(
        BUDGET_PERMITS,
        "Upstream budget permits granted, by how (immediate or queued)"
    );
    describe_histogram!(
        BUDGET_WAIT,
        Unit::Seconds,
        "Time a request queued for an upstream budget permit"
    );
    describe_gauge!(BUDGET_QUEUE_DEPTH, "Requests queued for a budget permit");
    describe_counter!(
        BUDGET_REJECTIONS,
        "Requests refused a budget permit (503 upstream_busy or stale), by reason"
    );
    describe_gauge!(
        BUDGET_MODE,
        "Budget mode: 1 for the current one (local for the memory store; shared or fallback with Redis)"
    );
    describe_counter!(
        BUDGET_REDIS_ERRORS,
        "Failed or timed-out Redis budget calls"
    );
    describe_counter!(UPSTREAM_429, "429 answers from Outseta to API-key calls");
    describe_counter!(USER_LIMITED, "Requests refused by the per-user limit (429)");
    describe_gauge!(USER_LIMIT_KEYS, "Callers tracked by the per-user limit");
    describe_counter!(CONFIG_RELOADS, "Configuration reload attempts, by result");
    describe_counter!(
        CACHE_HITS,
        "GETs answered from a fresh cache entry, by rule"
    );
    describe_counter!(
        CACHE_MISSES,
        "Upstream calls made for cacheable GETs (leaders and uncoalescible misses), by rule"
    );
    describe_counter!(
        CACHE_COLLAPSED,
        "GETs answered by another request's upstream call, by rule"
    );
    describe_counter!(CACHE_STALE, "Stale entries served, by rule and reason");
    describe_counter!(CACHE_STORED, "Answers stored, by rule");
    describe_counter!(
        CACHE_BYPASS,
        "Answers of cacheable rules not stored, by rule and reason"
    );
    describe_counter!(
        CACHE_REFRESHES,
        "Background refreshes (stale-while-revalidate), by rule and result"
    );
    describe_counter!(
        CACHE_EVICTIONS,
        "Entries removed, by cause (size, expired, invalidated)"
    );
    describe_gauge!(
        CACHE_BYTES,
        Unit::Bytes,
        "Weight held by the cache: keys, headers, bodies and bookkeeping"
    );
    describe_gauge!(CACHE_ENTRIES, "Entries held by the cache");
}
