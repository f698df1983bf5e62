//! What `demo` prints once both servers are ready: addresses, every seeded user with their
//! account and role, tokens for two of them, ready-to-paste curl commands with the status each
//! one answers, and an npm `outseta-api-client` snippet that runs as printed.
//!
//! # Format (tests/demo.rs reads it)
//! - Token lines are shell assignments: `ALICE_TOKEN='eyJ…'`.
//! - Every command is one line starting with `curl `, preceded by a comment line ending in
//!   `→ <status>` (optionally followed by ` — <note>`).

use std::fmt::Write as _;

use super::{Demo, DemoUser};

/// One printed command and the status it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub what: String,
    pub expect: u16,
    pub note: Option<String>,
    pub curl: String,
}

/// `ALICE_TOKEN` for alice@example.com.
fn var(u: &DemoUser) -> String {
    let local = u.user.email.split('@').next().unwrap_or("");
    let name: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("USER_{name}_TOKEN")
    } else {
        format!("{name}_TOKEN")
    }
}

fn first_name(u: &DemoUser) -> &str {
    u.user
        .name
        .split_whitespace()
        .next()
        .unwrap_or(&u.user.email)
}

/// The commands for `me` (with `other` as the user whose data is refused).
fn for_user(base: &str, me: &DemoUser, other: &DemoUser) -> Vec<Command> {
    let auth = format!("-H \"Authorization: bearer ${}\"", var(me));
    let own = format!("{base}/api/v1/crm/people/{}", me.user.person_uid);
    let name = first_name(me);
    vec![
        Command {
            what: format!("{name} reads their own person"),
            expect: 200,
            note: None,
            curl: format!("curl -sS -i {auth} {own}"),
        },
        Command {
            what: format!("{name} reads {}'s person", first_name(other)),
            expect: 403,
            note: Some("forbidden by the rule \"read own person\"".into()),
            curl: format!(
                "curl -sS -i {auth} {base}/api/v1/crm/people/{}",
                other.user.person_uid
            ),
        },
        Command {
            what: format!("{name} logs in through the gateway"),
            expect: 200,
            note: Some("a fresh access_token; no API key is involved".into()),
            curl: format!(
                "curl -sS -i -H 'Content-Type: application/json' -d '{{\"username\":\"{}\",\"password\":\"{}\"}}' {base}/api/v1/tokens",
                me.user.email, me.user.password
            ),
        },
        Command {
            what: format!("{name} reads their own person again"),
            expect: 200,
            note: Some(
                "see its Cache-Status header: served from the gateway's response cache".into(),
            ),
            curl: format!("curl -sS -i {auth} {own}"),
        },
    ]
}

/// Every command the banner prints, in order.
pub fn commands(demo: &Demo) -> Vec<Command> {
    let base = demo.gateway_url();
    let Some((a, b)) = demo.pair() else {
        return Vec::new();
    };
    let mut out = for_user(&base, a, b);
    out.extend(for_user(&base, b, a));
    out.push(Command {
        what: "anyone lists the public plans (no token)".into(),
        expect: 200,
        note: None,
        curl: format!("curl -sS -i {base}/api/v1/billing/plans"),
    });
    out
}

/// The whole start-up text.
pub fn banner(demo: &Demo, config_name: &str) -> String {
    let mut s = String::new();
    let gw = demo.gateway_url();
    let _ = writeln!(
        s,
        "outseta-gateway demo: the gateway in front of a built-in Outseta simulator\n"
    );
    if let Some(busy) = demo.fallback_from {
        let _ = writeln!(
            s,
            "  note: {busy} is busy, so the gateway listens on {} instead (choose with --listen)",
            demo.gateway
        );
    }
    let _ = writeln!(s, "  gateway    {gw}   rules: {config_name}");
    let _ = writeln!(
        s,
        "  admin      http://{}   /healthz /readyz /metrics",
        demo.admin
    );
    let _ = writeln!(
        s,
        "  simulator  {sim}   stats: {sim}/__sim/stats (its API key is random and stays in this process)",
        sim = demo.simulator
    );
    let origins = if demo.cors_origins.is_empty() {
        "none".to_owned()
    } else {
        demo.cors_origins.join(", ")
    };
    let _ = writeln!(s, "  CORS       {origins}");
    let _ = writeln!(s);
    if let Some((a, b)) = demo.pair() {
        let _ = writeln!(s, "Demo users (password {} for all):", a.user.password);
        for u in &demo.users {
            let _ = writeln!(
                s,
                "  {:<20} {:<16} person {}  account {} ({}), {}",
                u.user.email,
                u.user.name,
                u.user.person_uid,
                u.user.account_uid,
                u.user.account_name,
                if u.user.is_primary {
                    "primary contact"
                } else {
                    "member"
                }
            );
        }
        let _ = writeln!(s, "\nPaste into a shell (bash/zsh):\n");
        for u in [a, b] {
            let _ = writeln!(s, "{}='{}'", var(u), u.token);
        }
        for (i, c) in commands(demo).iter().enumerate() {
            let note = c
                .note
                .as_ref()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default();
            let _ = writeln!(s, "\n# {}. {} → {}{note}", i + 1, c.what, c.expect);
            let _ = writeln!(s, "{}", c.curl);
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "From an SPA: fetch(\"{gw}/api/v1/profile\", {{ headers: {{ Authorization: \"bearer \" + token }} }})"
    );
    let _ = writeln!(
        s,
        "With the npm outseta-api-client (an .mjs file, or node --input-type=module):"
    );
    let _ = writeln!(
        s,
        "  import pkg from \"outseta-api-client\";   // CommonJS: the class is its `default`"
    );
    let _ = writeln!(s, "  const OutsetaApiClient = pkg.default ?? pkg;");
    let _ = writeln!(
        s,
        "  const client = new OutsetaApiClient({{ subdomain: \"demo\" }});"
    );
    let _ = writeln!(s, "  client.user.store.baseUrl = \"{gw}/api/v1/\";");
    let _ = writeln!(
        s,
        "  client.user.store.serverAuth = client.user.store.userAuth;   // send the user's bearer everywhere"
    );
    if let Some((a, _)) = demo.pair() {
        let _ = writeln!(
            s,
            "  await client.user.login(\"{}\", \"{}\");",
            a.user.email, a.user.password
        );
    }
    let _ = writeln!(s, "\nPress Ctrl-C to stop the gateway and the simulator.");
    s
}
