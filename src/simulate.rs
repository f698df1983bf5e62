//! `outseta-gateway simulate`: bind the simulator (the `outseta-sim` crate), print what a
//! developer needs to point a gateway or an SPA at it, serve until SIGINT/SIGTERM.
//!
//! The command-line wiring lives here, on the gateway's side: the simulator crate knows
//! nothing of the gateway's CLI or signal handling.

use std::fmt::Write as _;
use std::io;

use outseta_sim::{SimOptions, Simulator, bind};

use crate::cli::SimulateArgs;

/// The simulator's options from `simulate`'s arguments.
pub fn options(a: &SimulateArgs) -> SimOptions {
    SimOptions {
        listen: a.listen,
        rate: a.rate,
        latency: a.latency,
        api_key: a.api_key.clone(),
        api_secret: a.api_secret.clone(),
        host: a.host.clone(),
    }
}

/// The start-up text: URLs, issuer/audience, the API key and the seeded users.
pub fn banner(sim: &Simulator, opts: &SimOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Outseta simulator listening on {}", sim.base_url());
    let _ = writeln!(s, "  API base:  {}/api/v1", sim.base_url());
    let _ = writeln!(s, "  JWKS:      {}", sim.jwks_url());
    let _ = writeln!(s, "  issuer:    {}", sim.issuer());
    let _ = writeln!(s, "  audience:  {}", sim.audience());
    let _ = writeln!(
        s,
        "  API key:   Authorization: Outseta {}:<the --api-secret value{}>",
        opts.api_key,
        if opts.api_secret == SimOptions::default().api_secret {
            ", default sim-secret"
        } else {
            ""
        }
    );
    let rate = if opts.rate == 0 {
        "off".to_owned()
    } else {
        format!("{}/s per API key", opts.rate)
    };
    let _ = writeln!(
        s,
        "  rate limit: {rate}; latency: {}",
        humantime::format_duration(opts.latency)
    );
    let _ = writeln!(s, "  stats:     {}/__sim/stats", sim.base_url());
    let _ = writeln!(s, "Seeded users (POST {}/api/v1/tokens):", sim.base_url());
    for u in sim.users() {
        let _ = writeln!(
            s,
            "  {:<20} password {:<14} person {}  account {} ({}){}",
            u.email,
            u.password,
            u.person_uid,
            u.account_uid,
            u.account_name,
            if u.is_primary { ", primary" } else { "" }
        );
    }
    s
}

/// Runs the simulator until SIGINT/SIGTERM.
pub async fn run(opts: SimOptions) -> io::Result<()> {
    let sim = bind(opts.clone()).await?;
    print!("{}", banner(&sim, &opts));
    tracing::info!(addr = %sim.addr(), "simulator ready");
    sim.serve(crate::shutdown::signal()).await;
    Ok(())
}
