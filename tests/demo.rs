//! `outseta-gateway demo`: its config is the production rule set, and the curl commands it
//! prints do what it says when run with the real `curl` (skipped loudly without curl, unless
//! REQUIRE_ALL=1); Ctrl-C stops it cleanly.

mod support;

use std::time::{Duration, Instant};

use outseta_gateway::demo::{self, Listen};
use support::process::Proc;
use support::tools;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn read_toml(name: &str) -> toml::Table {
    let text = std::fs::read_to_string(format!("{REPO}/{name}")).expect("read config");
    toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn demo_config_has_exactly_the_production_rules() {
    let prod = read_toml("config/gateway.toml");
    let demo = read_toml("config/demo.toml");
    let rules = |t: &toml::Table| t.get("rule").cloned().expect("[[rule]] tables");
    assert_eq!(
        rules(&prod),
        rules(&demo),
        "config/demo.toml's [[rule]] tables must equal config/gateway.toml's"
    );
    assert!(rules(&prod).as_array().is_some_and(|r| r.len() > 10));

    // The built-in copy is the file, and it is a valid config with a local SPA origin and a
    // loopback admin listener.
    let text = std::fs::read_to_string(format!("{REPO}/config/demo.toml")).unwrap();
    assert_eq!(demo::CONFIG, text);
    let config = demo::load_config(None).expect("the built-in demo config is valid");
    assert!(config.path.is_none(), "the demo must not hot-reload");
    assert!(
        config
            .cors
            .allowed_origins
            .contains(&"http://localhost:5173".to_string()),
        "{:?}",
        config.cors.allowed_origins
    );
    assert!(config.server.admin_listen.ip().is_loopback());
    assert!(config.server.listen.ip().is_loopback());
    assert_eq!(
        config.rules.rules().len(),
        outseta_gateway::Config::load(format!("{REPO}/config/gateway.toml").as_ref())
            .unwrap()
            .rules
            .rules()
            .len()
    );
}

/// A printed command: the status it promises, and the line.
#[derive(Debug)]
struct Printed {
    comment: String,
    expect: u16,
    curl: String,
}

/// Token assignments and `# … → NNN` + `curl …` pairs from the banner.
fn parse_banner(out: &str) -> (Vec<String>, Vec<Printed>) {
    let lines: Vec<&str> = out.lines().collect();
    let vars = lines
        .iter()
        .filter(|l| {
            l.split_once("_TOKEN='")
                .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        })
        .map(|l| l.to_string())
        .collect();
    let mut cmds = Vec::new();
    for pair in lines.windows(2) {
        let (comment, curl) = (pair[0], pair[1]);
        if !(comment.starts_with("# ") && curl.starts_with("curl ")) {
            continue;
        }
        let (_, after) = comment.split_once("→ ").expect("a status after →");
        let expect = after[..3].parse().expect("a 3-digit status");
        cmds.push(Printed {
            comment: comment.to_string(),
            expect,
            curl: curl.to_string(),
        });
    }
    (vars, cmds)
}

async fn wait_for(proc: &Proc, marker: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let out = proc.output();
        if out.contains(marker) {
            return out;
        }
        assert!(
            start.elapsed() < limit,
            "no {marker:?} within {limit:?}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn demo_prints_curl_commands_that_answer_as_printed_then_stops_on_ctrl_c() {
    if !tools::has("demo curl commands", "curl", "apt-get install -y curl") {
        return;
    }
    let started = Instant::now();
    let mut proc = Proc::spawn(
        &["demo", "--listen", "127.0.0.1:0", "--log-format", "json"],
        &[],
    );
    let out = wait_for(&proc, "Press Ctrl-C", Duration::from_secs(30)).await;
    let (vars, cmds) = parse_banner(&out);
    assert_eq!(vars.len(), 2, "two demo users' tokens:\n{out}");
    let statuses: Vec<u16> = cmds.iter().map(|c| c.expect).collect();
    assert_eq!(
        statuses,
        [200, 403, 200, 200, 200, 403, 200, 200, 200],
        "{out}"
    );
    assert!(
        cmds.iter().any(|c| c.curl.contains("/api/v1/tokens")),
        "a login command:\n{out}"
    );
    assert!(
        cmds.iter().any(|c| c.comment.contains("Cache-Status")),
        "the second read points at Cache-Status:\n{out}"
    );

    let mut seen_urls = Vec::new();
    for cmd in &cmds {
        let script = format!("{}\n{}\n", vars.join("\n"), cmd.curl);
        let run = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("run sh");
        let text = String::from_utf8_lossy(&run.stdout).replace("\r\n", "\n");
        assert!(
            run.status.success(),
            "{}\n{}\n{text}{}",
            cmd.comment,
            cmd.curl,
            String::from_utf8_lossy(&run.stderr)
        );
        let status_line = text.lines().next().unwrap_or("");
        assert!(
            status_line.starts_with("HTTP/1.1 ")
                && status_line[9..].starts_with(&cmd.expect.to_string()),
            "{}: expected {}, got:\n{text}",
            cmd.comment,
            cmd.expect
        );
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let url = cmd.curl.rsplit(' ').next().unwrap().to_string();
        match cmd.expect {
            403 => assert!(body.contains(r#""code":"forbidden""#), "{body}"),
            200 if url.ends_with("/api/v1/tokens") => {
                assert!(body.contains(r#""access_token":"ey"#), "{body}")
            }
            200 if url.contains("/crm/people/") => {
                let uid = url.rsplit('/').next().unwrap();
                assert!(body.contains(&format!(r#""Uid":"{uid}""#)), "{body}");
                // The second read of the same person: once the response cache exists, its
                // Cache-Status must say hit.
                let cache_status = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("cache-status:")
                        .map(str::to_string)
                });
                if seen_urls.contains(&url)
                    && let Some(cs) = cache_status
                {
                    assert!(cs.contains("hit"), "second read: Cache-Status {cs}");
                }
                seen_urls.push(url);
            }
            _ => assert!(body.contains(r#""items""#), "{body}"),
        }
    }

    proc.signal("INT");
    let code = proc.wait_exit(Duration::from_secs(20)).await;
    let out = proc.output();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("demo stopped"), "{out}");
    assert!(
        !out.contains("Outseta demo-key:"),
        "the simulator's API key must never be printed:\n{out}"
    );
    eprintln!("demo end to end: {:?}", started.elapsed());
}

#[tokio::test]
async fn demo_with_a_busy_listen_address() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();

    // Explicit --listen: a clear error, exit 1.
    let (code, out) = support::process::run(
        &[
            "demo",
            "--listen",
            &addr.to_string(),
            "--log-format",
            "json",
        ],
        &[],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("cannot listen on {addr}")), "{out}");

    // The default address (Listen::Preferred) falls back to a free port and says so.
    let d = demo::start(demo::load_config(None).unwrap(), Listen::Preferred(addr))
        .await
        .expect("start with a fallback port");
    assert_eq!(d.fallback_from, Some(addr));
    assert_ne!(d.gateway, addr);
    assert!(demo::banner(&d, "test").contains(&format!("note: {addr} is busy")));
    d.shutdown().await;
}
