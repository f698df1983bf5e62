//! Real clients end to end, against the simulator and a gateway with the production rule set
//! (`config/demo.toml`, whose rules equal `config/gateway.toml`'s — see tests/demo.rs), both
//! in-process on 127.0.0.1:0:
//!
//! - the npm `outseta-api-client` (pinned in tests/clients/package.json), driven by
//!   tests/clients/outseta-api-client.mjs under `node`;
//! - headless Chromium loading the SPA page of tests/browser/ from a listed origin (it logs in,
//!   reads its profile and account, CORS preflights included) and from an unlisted one (the
//!   browser refuses, nothing reaches Outseta).
//!
//! Without `node` + `npm ci --prefix tests/clients`, or without `chromium`, a test prints a
//! loud SKIP and passes — unless REQUIRE_ALL=1 (`.ci/run` installs them).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use outseta_gateway::demo::{Demo, DemoUser};
use serde_json::Value;
use support::client::get;
use support::demo::{start, user};
use support::static_site::StaticSite;
use support::tools;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The simulator's request counts, `{"METHOD /template": {"status": n}}`.
async fn sim_requests(d: &Demo) -> Value {
    get(&format!("{}/__sim/stats", d.simulator), &[])
        .await
        .json()["requests"]
        .clone()
}

/// Calls the gateway made upstream so far (its `gateway_upstream_requests_total`, summed).
/// The metrics recorder is per process: the tests of this file take [`SERIAL`].
async fn gateway_upstream_calls(d: &Demo) -> u64 {
    let text = get(&format!("http://{}/metrics", d.admin), &[])
        .await
        .text();
    text.lines()
        .filter(|l| l.starts_with("gateway_upstream_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One test of this file at a time (they read the process-wide metrics).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn count(stats: &Value, route: &str, status: &str) -> u64 {
    stats[route][status].as_u64().unwrap_or(0)
}

/// Runs `cmd` with a time limit; returns (exit code, stdout, stderr).
async fn run(cmd: &str, args: &[String], limit: Duration) -> (i32, String, String) {
    let child = tokio::process::Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{cmd} did not finish within {limit:?}"))
        .expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// tests/clients when `node` and the pinned npm package are present; else a loud SKIP
/// (`None`) for the test named `what`.
fn npm_client(what: &str) -> Option<PathBuf> {
    let clients = Path::new(REPO).join("tests/clients");
    let missing: Vec<String> = [
        tools::need("node", "apt-get install -y nodejs"),
        tools::need_path(
            &clients.join("node_modules/outseta-api-client/package.json"),
            "npm ci --prefix tests/clients",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    tools::available(what, &missing).then_some(clients)
}

#[tokio::test]
async fn npm_outseta_api_client_through_the_gateway() {
    let Some(clients) = npm_client("npm outseta-api-client end to end") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let d = start(None).await;
    let alice = user(&d, "alice@example.com");
    let carol = user(&d, "carol@example.com");
    assert_ne!(alice.user.account_uid, carol.user.account_uid);
    let carol_cases = get(
        &format!("{}/api/v1/support/cases", d.gateway_url()),
        &[("authorization", &format!("bearer {}", carol.token))],
    )
    .await;
    assert_eq!(carol_cases.status, 200, "{}", carol_cases.text());
    let carol_case = carol_cases.json()["items"][0]["Uid"]
        .as_str()
        .expect("carol has a case")
        .to_string();

    let started = Instant::now();
    let (code, stdout, stderr) = run(
        "node",
        &[
            clients.join("outseta-api-client.mjs").display().to_string(),
            d.gateway_url(),
            alice.user.email.clone(),
            alice.user.password.clone(),
            carol.user.person_uid.clone(),
            carol_case.clone(),
        ],
        Duration::from_secs(60),
    )
    .await;
    let elapsed = started.elapsed();
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    let ctx = format!("exit {code}\n{stdout}\n{stderr}");
    assert_eq!(code, 0, "{ctx}");
    assert_eq!(report["good"], true, "{ctx}");

    // Logged in through the gateway (POST /api/v1/tokens, no credential upstream).
    assert_eq!(report["login"]["ok"], true, "{ctx}");
    assert_eq!(report["login"]["tokenType"], "Bearer", "{ctx}");
    assert_eq!(report["claims"]["sub"], alice.user.person_uid.as_str());
    // profile.get: the user's own bearer forwarded.
    assert_eq!(report["profile"]["uid"], alice.user.person_uid.as_str());
    assert_eq!(report["profile"]["email"], alice.user.email.as_str());
    // crm.people.get(own uid): allowed by "read own person", sent with the API key.
    assert_eq!(report["person"]["uid"], alice.user.person_uid.as_str());
    // crm.accounts.get(own account) with the client's default
    // fields=*,PersonAccount.*,PersonAccount.Person.Uid — the fields reached Outseta (the
    // members' Uids are only there when PersonAccount.Person.Uid was asked for).
    assert_eq!(report["account"]["uid"], alice.user.account_uid.as_str());
    assert_eq!(report["account"]["name"], alice.user.account_name.as_str());
    let members = report["account"]["members"].as_array().expect("members");
    assert!(
        members.contains(&Value::from(alice.user.person_uid.as_str())),
        "{ctx}"
    );
    // billing.plans.getAll: public, no Authorization.
    assert_eq!(report["plans"]["count"], 4, "{ctx}");
    // billing.subscriptions.getAll, then .get(own uid) with the client's default
    // fields=*,Account.Uid,Plan.Uid: the account checked on the answer.
    assert_eq!(report["subscription"]["ok"], true, "{ctx}");
    assert_eq!(
        report["subscription"]["account"],
        alice.user.account_uid.as_str(),
        "{ctx}"
    );
    // profile.update with the whole object profile.get read (read-only keys dropped), then
    // crm.people.get of the same person: fresh, the write invalidated the cached read.
    assert_eq!(report["profileUpdate"]["firstName"], "Zed", "{ctx}");
    assert_eq!(report["personAfterUpdate"]["firstName"], "Zed", "{ctx}");
    // support.cases.addReplyFromClient: on the caller's own case it is posted; on someone
    // else's the precheck refuses it and nothing is posted.
    assert_eq!(report["reply"]["ok"], true, "{ctx}");
    assert_eq!(report["otherReply"]["status"], 403, "{ctx}");
    assert_eq!(report["otherReply"]["body"]["code"], "forbidden", "{ctx}");
    // Someone else's person: refused by the gateway with its problem+json.
    assert_eq!(report["otherPerson"]["ok"], false, "{ctx}");
    assert_eq!(report["otherPerson"]["status"], 403, "{ctx}");
    assert_eq!(report["otherPerson"]["body"]["code"], "forbidden", "{ctx}");

    // What Outseta saw: each allowed call once, the refused one never.
    let stats = sim_requests(&d).await;
    assert_eq!(count(&stats, "POST /api/v1/tokens", "200"), 1, "{stats}");
    // (twice: profile.get, and again before the update)
    assert_eq!(count(&stats, "GET /api/v1/profile", "200"), 2, "{stats}");
    // (twice: the person read again after the profile update, not served stale)
    assert_eq!(
        count(&stats, "GET /api/v1/crm/people/{uid}", "200"),
        2,
        "{stats}"
    );
    assert_eq!(count(&stats, "PUT /api/v1/profile", "200"), 1, "{stats}");
    // carol's list (above) and alice's; one precheck read per reply
    assert_eq!(
        count(&stats, "GET /api/v1/support/cases", "200"),
        2,
        "{stats}"
    );
    assert_eq!(
        count(&stats, "GET /api/v1/support/cases/{uid}", "200"),
        2,
        "{stats}"
    );
    assert_eq!(
        count(
            &stats,
            "POST /api/v1/support/cases/{uid}/clientresponse/{comment}",
            "200"
        ),
        1,
        "{stats}"
    );
    assert_eq!(
        count(&stats, "GET /api/v1/crm/accounts/{uid}", "200"),
        1,
        "{stats}"
    );
    assert_eq!(
        count(&stats, "GET /api/v1/billing/plans", "200"),
        1,
        "{stats}"
    );
    assert_eq!(
        count(&stats, "GET /api/v1/billing/subscriptions", "200"),
        1,
        "{stats}"
    );
    assert_eq!(
        count(&stats, "GET /api/v1/billing/subscriptions/{uid}", "200"),
        1,
        "{stats}"
    );
    let all: u64 = stats
        .as_object()
        .unwrap()
        .iter()
        .filter(|(route, _)| route.contains("/api/"))
        .flat_map(|(_, by_status)| by_status.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(
        all, 15,
        "only the allowed calls (and one precheck read per reply) reached Outseta: {stats}"
    );
    eprintln!("outseta-api-client (node) run: {elapsed:?}");
    d.shutdown().await;
}

/// The npm snippet `demo` prints runs as printed (pasted into an .mjs file beside the pinned
/// package), and logs in as the user it names.
#[tokio::test]
async fn the_banners_npm_snippet_runs_as_printed() {
    let Some(clients) = npm_client("the banner's npm snippet") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let d = start(None).await;
    let banner = outseta_gateway::demo::banner(&d, "test");
    let snippet: Vec<&str> = banner
        .lines()
        .skip_while(|l| !l.starts_with("With the npm outseta-api-client"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| &l[2..])
        .collect();
    assert!(snippet.iter().any(|l| l.contains("login(")), "{banner}");
    let script = clients.join(format!("banner-snippet-{}.mjs", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "{}\nconst p = await client.user.profile.get();\nconsole.log(JSON.stringify({{ uid: p.Uid }}));\n",
            snippet.join("\n")
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        "node",
        &[script.display().to_string()],
        Duration::from_secs(60),
    )
    .await;
    let _ = std::fs::remove_file(&script);
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{}", snippet.join("\n"));
    let out: Value = serde_json::from_str(stdout.trim()).unwrap_or_default();
    let alice = user(&d, "alice@example.com");
    assert_eq!(
        out["uid"],
        alice.user.person_uid.as_str(),
        "{stdout}\n{stderr}"
    );
    d.shutdown().await;
}

/// Loads `url` in headless Chromium and returns the DOM after the page's scripts settled.
async fn chromium_dom(url: &str) -> String {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let profile: PathBuf = std::env::temp_dir().join(format!(
        "ogw-chromium-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--virtual-time-budget=15000",
        "--dump-dom",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--user-data-dir={}", profile.display()),
        url.to_string(),
    ])
    .collect();
    let (code, dom, stderr) = run("chromium", &args, Duration::from_secs(90)).await;
    let _ = std::fs::remove_dir_all(&profile);
    assert_eq!(code, 0, "chromium failed:\n{stderr}");
    dom
}

/// The text of the element with `id` in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in:\n{dom}"))
        + marker.len();
    let end = dom[start..].find('<').map_or(dom.len(), |e| start + e);
    dom[start..end].to_string()
}

fn page_url(site: &StaticSite, gateway: SocketAddr, me: &DemoUser, other: &DemoUser) -> String {
    format!(
        "{}/index.html?gateway=http://{gateway}&email={}&password={}&other={}",
        site.origin(),
        me.user.email,
        me.user.password,
        other.user.person_uid
    )
}

#[tokio::test]
async fn headless_chromium_spa_through_the_gateway_with_cors() {
    if !tools::has(
        "headless Chromium SPA end to end",
        "chromium",
        "apt-get install -y chromium",
    ) {
        return;
    }
    let _serial = SERIAL.lock().await;
    let pages = Path::new(REPO).join("tests/browser");
    let listed = StaticSite::start(&pages).await;
    let unlisted = StaticSite::start(&pages).await;
    let d = start(Some(vec![listed.origin()])).await;
    let alice = user(&d, "alice@example.com");
    let carol = user(&d, "carol@example.com");

    // From the listed origin: login, profile and account render; another person is refused
    // with a 403 the page can read.
    let started = Instant::now();
    let dom = chromium_dom(&page_url(&listed, d.gateway, alice, carol)).await;
    let listed_took = started.elapsed();
    assert_eq!(text_of(&dom, "status"), "ok", "{dom}");
    assert_eq!(text_of(&dom, "name"), alice.user.name, "{dom}");
    assert_eq!(text_of(&dom, "email"), alice.user.email, "{dom}");
    assert_eq!(text_of(&dom, "person"), alice.user.person_uid, "{dom}");
    assert_eq!(
        text_of(&dom, "account"),
        format!("{} ({})", alice.user.account_name, alice.user.account_uid),
        "{dom}"
    );
    assert!(
        text_of(&dom, "members").contains(&alice.user.person_uid),
        "{dom}"
    );
    assert_eq!(text_of(&dom, "other"), "refused 403 forbidden", "{dom}");
    let stats = sim_requests(&d).await;
    assert_eq!(count(&stats, "POST /api/v1/tokens", "200"), 1, "{stats}");
    assert_eq!(count(&stats, "GET /api/v1/profile", "200"), 1, "{stats}");
    assert_eq!(
        count(&stats, "GET /api/v1/crm/accounts/{uid}", "200"),
        1,
        "{stats}"
    );
    assert!(
        stats.get("GET /api/v1/crm/people/{uid}").is_none(),
        "the refused read never reached Outseta: {stats}"
    );

    // From an origin not in [cors]: the gateway refuses the preflight, so the browser never
    // sends the login; the page shows the rejected fetch and Outseta sees nothing.
    let upstream_before = gateway_upstream_calls(&d).await;
    assert!(upstream_before >= 3, "the listed page's calls are counted");
    let started = Instant::now();
    let dom = chromium_dom(&page_url(&unlisted, d.gateway, alice, carol)).await;
    let unlisted_took = started.elapsed();
    let status = text_of(&dom, "status");
    assert!(status.starts_with("blocked"), "{status}\n{dom}");
    assert_eq!(text_of(&dom, "name"), "", "{dom}");
    assert_eq!(
        sim_requests(&d).await,
        stats,
        "no API call reached Outseta from the unlisted origin"
    );
    assert_eq!(
        gateway_upstream_calls(&d).await,
        upstream_before,
        "the gateway forwarded nothing for the unlisted origin"
    );
    eprintln!("chromium: listed origin {listed_took:?}, unlisted origin {unlisted_took:?}");
    d.shutdown().await;
}
