//! Command line: the subcommands, their options and defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "outseta-gateway",
    version,
    about = "Authenticating reverse proxy for the Outseta REST API"
)]
pub struct Cli {
    /// Log format (default: pretty on a terminal, json otherwise). RUST_LOG sets the filter.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Config file [default: $OUTSETA_GATEWAY_CONFIG, then config/gateway.toml]
    #[arg(
        short = 'c',
        long = "config",
        env = "OUTSETA_GATEWAY_CONFIG",
        default_value = "config/gateway.toml"
    )]
    pub path: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ConfigArg),
    /// Validate the config and rules; print every problem; exit 0 if valid, 1 if not.
    Check(ConfigArg),
    /// Print the decision for one request, offline.
    Explain(ExplainArgs),
    /// Run files of expected decisions (`[[case]]`) against the rules, offline; exit 0 only
    /// when every case passes.
    Test(TestArgs),
    /// Run the built-in Outseta simulator alone.
    Simulate(SimulateArgs),
    /// Run the simulator and a gateway in front of it with config/demo.toml; print demo
    /// tokens and curl commands; run until Ctrl-C.
    Demo(DemoArgs),
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// The gateway's address [default: 127.0.0.1:8080, or a free port if that one is busy].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A config file to use instead of the built-in copy of config/demo.toml; its `[outseta]`
    /// values are replaced by the simulator's.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A token to take the claims from (decoded WITHOUT verifying the signature).
    #[arg(long, conflicts_with = "claims", required_unless_present = "claims")]
    pub token: Option<String>,
    /// The claims as a JSON object.
    #[arg(long)]
    pub claims: Option<String>,
    /// A request body (body rules are applied to it as `serve` would).
    #[arg(long)]
    pub body: Option<String>,
    /// Print the decision as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// HTTP method, e.g. GET.
    pub method: String,
    /// Path and query, e.g. "/api/v1/crm/people/abc?fields=*".
    pub path_and_query: String,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// TOML files of `[[case]]` tables.
    #[arg(required = true)]
    pub cases: Vec<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8800")]
    pub listen: SocketAddr,
    /// API-key requests per second (burst of the same size) before 429; 0 disables the limit.
    #[arg(long, default_value_t = 4)]
    pub rate: u32,
    /// Delay added to every response, e.g. "200ms".
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// The API key the simulator accepts (`Authorization: Outseta KEY:SECRET`).
    #[arg(long, default_value = "sim-key")]
    pub api_key: String,
    /// The API secret the simulator accepts.
    #[arg(long, default_value = "sim-secret")]
    pub api_secret: String,
    /// Host used in the tokens' `iss` (http://HOST) and `aud` (HOST) [default: the listen address].
    #[arg(long)]
    pub host: Option<String>,
}
