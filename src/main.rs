//! The `outseta-gateway` binary: parse the command line, call the library, map exit codes
//! (0 ok, 1 invalid config or runtime failure, 2 usage error — clap's own).

use std::process::ExitCode;

use clap::Parser;
use outseta_gateway::cli::{Cli, Command};
use outseta_gateway::config::{Config, secrets};
use outseta_gateway::explain::{self, ClaimsFrom};
use outseta_gateway::telemetry::{self, LogFormat};
use outseta_gateway::{Options, app, demo, ruletest, shutdown, simulate};

/// mimalloc instead of glibc malloc: the request path makes a few dozen short-lived
/// allocations per request (boxed layer futures, header maps, request extensions), and glibc's
/// paths beyond its per-thread cache are a large share of a cache hit (`bench/RESULTS.md`).
#[global_allocator]
static GLOBAL: outseta_gateway::alloc::Mimalloc = outseta_gateway::alloc::Mimalloc;

/// The tokio runtime every long-running command uses: multi-threaded, one worker per CPU the
/// process may use (std reads the affinity mask and a cgroup CPU quota); with a single CPU
/// (`taskset`, a sidecar limited to one CPU) the current-thread scheduler, which does the same
/// work without the cross-thread hand-offs (the accept loop shares the one thread, no
/// work-stealing or idle-worker bookkeeping), so a cached answer costs less CPU
/// (`bench/RESULTS.md`, sixth pass).
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    outseta_gateway::alloc::small_pages();
    let cli = Cli::parse();
    let format = cli.log_format.unwrap_or_else(LogFormat::detect);
    match cli.command {
        Command::Serve(c) => {
            let _log = telemetry::init(format, "info");
            let config = match Config::load(&c.path) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let api = match secrets::from_env() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match runtime() {
                Ok(r) => r,
                Err(code) => return code,
            };
            runtime.block_on(async move {
                let bound = match app::bind(
                    config,
                    Options {
                        api,
                        ..Options::default()
                    },
                )
                .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start");
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                bound.serve(shutdown::signal()).await;
                ExitCode::SUCCESS
            })
        }
        Command::Check(c) => {
            let _log = telemetry::init(format, "warn");
            match Config::load(&c.path) {
                Ok(config) => {
                    for w in &config.warnings {
                        println!("warning: {w}");
                    }
                    if config.needs_api_key() {
                        match secrets::from_env() {
                            Ok(Some(_)) => {}
                            Ok(None) => println!(
                                "note: rules use credential \"api_key\"; set OUTSETA_API_KEY and OUTSETA_API_SECRET (or their _FILE variants) before `serve`"
                            ),
                            Err(e) => {
                                println!("error: {e}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                    println!(
                        "{}: ok ({} rules)",
                        c.path.display(),
                        config.rules.rules().len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    print!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Simulate(a) => {
            let _log = telemetry::init(format, "info");
            let runtime = match runtime() {
                Ok(r) => r,
                Err(code) => return code,
            };
            match runtime.block_on(simulate::run(simulate::options(&a))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: simulator: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo(a) => {
            let _log = telemetry::init(format, "info");
            let config = match demo::load_config(a.config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let name = a.config.as_ref().map_or_else(
                || "config/demo.toml (built in)".to_owned(),
                |p| p.display().to_string(),
            );
            let listen = a.listen.map_or(
                demo::Listen::Preferred(demo::DEFAULT_LISTEN),
                demo::Listen::Exactly,
            );
            let runtime = match runtime() {
                Ok(r) => r,
                Err(code) => return code,
            };
            match runtime.block_on(demo::run(config, listen, &name)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Explain(a) => {
            let _log = telemetry::init(format, "warn");
            let config = match Config::load(&a.config.path) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let claims = match (&a.token, &a.claims) {
                (Some(t), _) => ClaimsFrom::Token(t),
                (None, Some(c)) => ClaimsFrom::Json(c),
                (None, None) => {
                    eprintln!("error: pass --token or --claims");
                    return ExitCode::from(2);
                }
            };
            match explain::explain(
                &config,
                &a.method,
                &a.path_and_query,
                claims,
                a.body.as_deref(),
                a.json,
            ) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Test(a) => {
            let _log = telemetry::init(format, "warn");
            let config = match Config::load(&a.config.path) {
                Ok(c) => c,
                Err(e) => {
                    print!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            match ruletest::run_files(&config, &a.cases) {
                Ok(report) => {
                    print!("{}", report.render());
                    if report.failed == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(problems) => {
                    for p in problems {
                        println!("error: {p}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}
