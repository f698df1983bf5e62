//! Real clients end to end, against the simulator and a gateway with the production rule set
//! (`config/demo.toml`, whose rules equal `config/gateway.toml`'s — see tests/demo.rs), both
//! in-process on 127.0.0.1:0:
//!
//! - the npm `outseta-api-client` (pinned in tests/clients/package.json), driven by
//!   tests/clients/outseta-api-client.mjs under `node`;
//! - the PyPI `outsetapy` (pinned in tests/clients/requirements.txt), driven by
//!   tests/clients/outsetapy_driver.py under `python3`: every call a user's app would make,
//!   which of them work and how each of its own bugs shows (the README's table), every attempt
//!   at another customer's data refused, and exactly what reached Outseta;
//! - headless Chromium loading the SPA page of tests/browser/ from a listed origin (it logs in,
//!   reads its profile and account, CORS preflights included) and from an unlisted one (the
//!   browser refuses, nothing reaches Outseta).
//!
//! Without `node` + `npm ci --prefix tests/clients`, without `python3` +
//! `python3 -m pip install -r tests/clients/requirements.txt`, or without `chromium`, a test
//! prints a loud SKIP and passes — unless REQUIRE_ALL=1 (`.ci/run` installs them).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use outseta_gateway::demo::{Demo, DemoUser};
use serde_json::Value;
use support::client::{get, send};
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
    for (route, n) in [
        ("POST /api/v1/tokens", 1),
        // profile.get, and again before the update
        ("GET /api/v1/profile", 2),
        // the person read again after the profile update, not served stale
        ("GET /api/v1/crm/people/{uid}", 2),
        ("PUT /api/v1/profile", 1),
        // carol's list (above) and alice's
        ("GET /api/v1/support/cases", 2),
        // one precheck read per reply
        ("GET /api/v1/support/cases/{uid}", 2),
        (
            "POST /api/v1/support/cases/{uid}/clientresponse/{comment}",
            1,
        ),
        ("GET /api/v1/crm/accounts/{uid}", 1),
        ("GET /api/v1/billing/plans", 1),
        ("GET /api/v1/billing/subscriptions", 1),
        ("GET /api/v1/billing/subscriptions/{uid}", 1),
    ] {
        assert_eq!(count(&stats, route, "200"), n, "{route}: {stats}");
    }
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

/// The outsetapy version tests/clients/requirements.txt pins.
fn outsetapy_pin() -> String {
    let reqs = std::fs::read_to_string(Path::new(REPO).join("tests/clients/requirements.txt"))
        .expect("tests/clients/requirements.txt");
    reqs.lines()
        .find_map(|l| l.trim().strip_prefix("outsetapy=="))
        .expect("requirements.txt pins outsetapy")
        .trim()
        .to_string()
}

/// tests/clients when `python3` imports the pinned outsetapy; else a loud SKIP (`None`) for
/// the test named `what`.
fn python_client(what: &str) -> Option<PathBuf> {
    let pin = outsetapy_pin();
    let check = format!(
        "import importlib.metadata as m, outsetapy; assert m.version('outsetapy') == '{pin}'"
    );
    let missing: Vec<String> = tools::need("python3", "apt-get install -y python3")
        .or_else(|| {
            (!tools::runs("python3", &["-c", &check])).then(|| {
                format!(
                    "python3 cannot import outsetapy {pin} (it needs Python 3.10 or later; \
                     python3 -m pip install -r tests/clients/requirements.txt)"
                )
            })
        })
        .into_iter()
        .collect();
    tools::available(what, &missing).then_some(Path::new(REPO).join("tests/clients"))
}

/// The payload of a JWT, unverified (the demo minted it).
fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The PyPI outsetapy, driven by tests/clients/outsetapy_driver.py as Alice: what works
/// through the gateway, how each of its own bugs shows (README, "outsetapy"), that every
/// attempt at Carol's data is refused, and exactly what reached Outseta.
#[tokio::test]
async fn pypi_outsetapy_through_the_gateway() {
    let Some(clients) = python_client("PyPI outsetapy end to end") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let d = start(None).await;
    let alice = user(&d, "alice@example.com");
    let carol = user(&d, "carol@example.com");
    assert_ne!(alice.user.account_uid, carol.user.account_uid);
    let alice_sub = claims_of(&alice.token)["outseta:subscriptionUid"].clone();
    let carol_sub = claims_of(&carol.token)["outseta:subscriptionUid"]
        .as_str()
        .expect("carol's subscription")
        .to_string();
    assert_ne!(alice_sub, carol_sub.as_str());
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
    // From here on the simulator counts only what the driver's calls caused.
    let reset = send(
        "POST",
        &format!("{}/__sim/reset-stats", d.simulator),
        &[],
        "",
    )
    .await;
    assert!(reset.status < 300, "{}", reset.text());

    let started = Instant::now();
    let (code, stdout, stderr) = run(
        "python3",
        &[
            clients.join("outsetapy_driver.py").display().to_string(),
            d.gateway_url(),
            alice.user.email.clone(),
            alice.user.password.clone(),
            carol.user.email.clone(),
            carol.user.person_uid.clone(),
            carol.user.account_uid.clone(),
            carol_sub.clone(),
            carol_case.clone(),
        ],
        Duration::from_secs(120),
    )
    .await;
    let elapsed = started.elapsed();
    let ctx = format!("exit {code}\n{stdout}\n{stderr}");
    assert_eq!(code, 0, "{ctx}");
    let calls: std::collections::BTreeMap<String, Value> = stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{ctx}"));
            (v["call"].as_str().expect("call").to_string(), v)
        })
        .collect();
    let call = |name: &str| -> &Value {
        calls
            .get(name)
            .unwrap_or_else(|| panic!("no call {name:?}\n{ctx}"))
    };
    // The call returned (ok) and its last request got `status`.
    let works = |name: &str| {
        let c = call(name);
        assert_eq!(
            (&c["ok"], &c["status"]),
            (&Value::from(true), &Value::from(200)),
            "{name}: {c}"
        );
        c
    };
    // The call raised `error…` after its last request got `status`.
    let raised = |name: &str, status: u16, error: &str| {
        let c = call(name);
        assert_eq!(c["ok"], false, "{name}: {c}");
        assert_eq!(c["status"], status, "{name}: {c}");
        let e = c["error"].as_str().unwrap_or_default();
        assert!(e.starts_with(error), "{name}: {e:?} is not {error:?}…\n{c}");
        c
    };
    // Refused by the gateway with its problem+json `code`.
    let refused = |name: &str, status: u16, code: &str| {
        let c = raised(name, status, "Exception: <Response");
        assert_eq!(c["code"], code, "{name}: {c}");
        c
    };
    let targets = |c: &Value| -> Vec<String> {
        c["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["target"].as_str().unwrap().to_string())
            .collect()
    };
    const AWAIT_BUG: &str = "TypeError: object Response can't be used in 'await' expression";

    // login(): the POST is sent and answered, then the await bug; no token is kept.
    let login = raised("user.login", 200, AWAIT_BUG);
    assert_eq!(login["token_stored"], false, "{login}");
    // The profile, with the user's own bearer.
    let p = works("user.profile.get()");
    assert_eq!(p["uid"], alice.user.person_uid.as_str(), "{p}");
    assert_eq!(p["email"], alice.user.email.as_str(), "{p}");
    assert_eq!(p["first_name"], "Alice", "{p}");
    assert_eq!(works("user.profile.get(fields)")["accounts"], 1);
    // Writes are applied upstream, then the await bug.
    raised("user.profile.update", 200, AWAIT_BUG);
    assert_eq!(
        works("user.profile.get() after update")["first_name"],
        "Renamed"
    );
    raised("user.password.update", 200, AWAIT_BUG);
    raised("support.cases.add", 200, AWAIT_BUG);

    // Own person and account; the account only with a `fields` the rule allows.
    assert_eq!(
        works("crm.people.get(own)")["uid"],
        alice.user.person_uid.as_str()
    );
    let bad = refused("crm.accounts.get(own)", 400, "bad_request");
    assert!(
        bad["body"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("\" PrimarySubscription.Uid\"")),
        "the space in its default fields: {bad}"
    );
    let a = works("crm.accounts.get(own, fields)");
    assert_eq!(a["uid"], alice.user.account_uid.as_str(), "{a}");
    assert!(
        a["members"]
            .as_array()
            .unwrap()
            .contains(&Value::from(alice.user.person_uid.as_str())),
        "{a}"
    );

    // Plans: public. `get_all(limit=…)` builds `?limit=1?offset=1`, which the gateway reads
    // as `&`; with limit 1 its record offsets happen to equal Outseta's page numbers, with
    // limit 2 the second request asks for page 2 and the list comes back short.
    assert_eq!(works("billing.plans.get_all()")["count"], 4);
    let one = works("billing.plans.get_all(limit=1)");
    assert_eq!(one["count"], 4, "{one}");
    assert_eq!(
        targets(one),
        [
            "/api/v1/billing/plans?limit=1",
            "/api/v1/billing/plans?limit=1?offset=1",
            "/api/v1/billing/plans?limit=1?offset=2",
            "/api/v1/billing/plans?limit=1?offset=3"
        ]
    );
    assert_eq!(one["uids"], works("billing.plans.get_all()")["uids"]);
    let two = works("billing.plans.get_all(limit=2)");
    assert_eq!(
        two["count"], 2,
        "2 of 4 plans: its offset counts records: {two}"
    );
    assert!(works("billing.plan_families.get_all")["count"].as_u64() > Some(0));

    // Subscriptions: get_all sends no Authorization at all; get(uid) works.
    let all = refused("billing.subscriptions.get_all", 401, "missing_token");
    assert_eq!(all["exchanges"][0]["authorization"], Value::Null, "{all}");
    let s = works("billing.subscriptions.get(own)");
    assert_eq!(s["uid"], alice_sub, "{s}");
    assert_eq!(s["account"]["Uid"], alice.user.account_uid.as_str(), "{s}");

    // Invoices and transactions: answered, then its models cannot be built from the JSON.
    raised(
        "billing.invoices.get_all",
        200,
        "TypeError: Invoice.__init__() takes 1 positional argument",
    );
    let i = works("billing.invoices.get_by_id(own)");
    assert_eq!(i["account"], alice.user.account_uid.as_str(), "{i}");
    let t = raised(
        "billing.transactions.get_all(own)",
        200,
        "TypeError: Transaction.__init__() missing 8 required positional arguments",
    );
    assert_eq!(
        targets(t),
        [format!(
            "/api/v1/billing/transactions/{}?limit=25?offset=0",
            alice.user.account_uid
        )]
    );

    // Support cases: own list; a `FromPerson` filter naming Carol is replaced by Alice's.
    let own_cases = works("support.cases.get_all()");
    assert!(own_cases["count"].as_u64() > Some(0), "{own_cases}");
    let filtered = works("support.cases.get_all(FromPerson=other)");
    assert_eq!(
        filtered["from"],
        serde_json::json!([alice.user.person_uid]),
        "only Alice's cases: {filtered}"
    );
    assert_eq!(filtered["count"], own_cases["count"], "{filtered}");
    // A reply to her own case: the gateway reads the case's author first, then forwards the
    // reply; the await bug follows. On Carol's case the read refuses it before it is sent
    // (403, then the await bug all the same).
    raised("support.cases.add_reply_from_client(own)", 200, AWAIT_BUG);
    let hijack = raised("support.cases.add_reply_from_client(other)", 403, AWAIT_BUG);
    assert_eq!(hijack["code"], "forbidden", "{hijack}");
    assert_eq!(
        targets(hijack),
        [format!(
            "/api/v1/support/cases/{carol_case}/clientresponse/hijack"
        )]
    );
    // Its shared default options dict: the second get_all() starts at offset 25.
    let again = works("support.cases.get_all() again");
    assert_eq!(again["count"], 0, "{again}");
    assert_eq!(
        targets(again),
        ["/api/v1/support/cases?fields=%2A?offset=25"]
    );

    // Admin listings: no rule.
    for name in [
        "crm.people.get_all",
        "crm.accounts.get_all",
        "billing.usage.get_all",
    ] {
        refused(name, 403, "forbidden");
    }

    // Carol's data: every attempt refused.
    refused("crm.people.get(other)", 403, "forbidden");
    refused("crm.accounts.get(other, fields)", 403, "forbidden");
    refused("billing.transactions.get_all(other)", 403, "forbidden");
    // Judged on Outseta's answer (`response_when`): asked, and the answer withheld.
    let other_sub = refused("billing.subscriptions.get(other)", 403, "forbidden");
    assert!(
        !other_sub.to_string().contains(&carol.user.account_uid),
        "{other_sub}"
    );
    // Impersonation: the login rule never sends the API key, so Outseta wants a password.
    let imp = raised("user.impersonate(other)", 400, AWAIT_BUG);
    assert_eq!(imp["body"], "invalid_grant", "{imp}");

    // What Outseta saw: exactly the calls above that the gateway let through. Carol's
    // person, account and transactions never reached it, nor a reply on her case (its
    // author was read first); her subscription was read once (and withheld); her login was
    // tried without a password.
    let stats = sim_requests(&d).await;
    let api: serde_json::Map<String, Value> = stats
        .as_object()
        .unwrap()
        .iter()
        .filter(|(route, _)| route.contains("/api/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        Value::Object(api),
        serde_json::json!({
            "POST /api/v1/tokens": {"200": 2, "400": 1},
            "GET /api/v1/profile": {"200": 3},
            "PUT /api/v1/profile": {"200": 1},
            "PUT /api/v1/profile/password": {"200": 1},
            "GET /api/v1/crm/people/{uid}": {"200": 1},
            "GET /api/v1/crm/accounts/{uid}": {"200": 1},
            "GET /api/v1/billing/plans": {"200": 7},
            "GET /api/v1/billing/planfamilies": {"200": 1},
            "GET /api/v1/billing/subscriptions/{uid}": {"200": 2},
            "GET /api/v1/billing/invoices": {"200": 1},
            "GET /api/v1/billing/invoices/{uid}": {"200": 1},
            "GET /api/v1/billing/transactions/{accountUid}": {"200": 1},
            "GET /api/v1/support/cases": {"200": 3},
            "POST /api/v1/support/cases": {"200": 1},
            "GET /api/v1/support/cases/{uid}": {"200": 2},
            "POST /api/v1/support/cases/{uid}/clientresponse/{comment}": {"200": 1},
        }),
        "{stats}"
    );
    // Every call the driver made is judged above.
    assert_eq!(calls.len(), 32, "{:?}", calls.keys());
    eprintln!("outsetapy (python) run: {elapsed:?}");
    d.shutdown().await;
}

/// The README's outsetapy snippet runs as printed, with the demo gateway's address for
/// `127.0.0.1:8080`: Alice reads her own person and is refused Carol's.
#[tokio::test]
async fn the_readmes_outsetapy_snippet_runs_as_printed() {
    if python_client("the README's outsetapy snippet").is_none() {
        return;
    }
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let snippet: String = readme
        .lines()
        .skip_while(|l| *l != "```python")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(snippet.contains("OutsetaApiClient"), "{snippet}");
    let _serial = SERIAL.lock().await;
    let d = start(None).await;
    let alice = user(&d, "alice@example.com");
    let carol = user(&d, "carol@example.com");
    assert!(
        snippet.contains(&format!("\"{}\"", carol.user.person_uid)),
        "{snippet}"
    );
    let script = snippet.replace("http://127.0.0.1:8080", &d.gateway_url());
    let (code, stdout, stderr) = run(
        "python3",
        &["-c".to_string(), script],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{snippet}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [alice.user.email.as_str(), "403"],
        "{stderr}"
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
