//! `seqline`: one binary, one subcommand per way of running.
//!
//! - `seqline dev`: gateway + persister + fanout in one process on the
//!   embedded ports, zero setup.
//! - `seqline gateway|persister|fanout`: one role, on the ports configured in
//!   `[ports]` (cluster mode: Kafka, ScyllaDB, Redis).
//! - `seqline token`: mints a development token.
//! - `seqline config`: prints the effective configuration as TOML that
//!   `--config` reads back, secrets masked.
//! - `seqline health`: probes a health endpoint (the container healthcheck).

mod config;
mod health;
mod ports;
mod secrets;
mod supervisor;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use config::Overrides;
use std::path::PathBuf;
use supervisor::Roles;

/// The development token secret used by `seqline dev` when none is
/// configured. It warns about it; never use it in production.
const DEV_SECRET: &str = "seqline-dev-secret-change-me";

#[derive(Parser)]
#[command(
    name = "seqline",
    version,
    about = "Message delivery for instant messaging: never lost, never duplicated, never reordered."
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', global = true, env = "SEQLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Data directory of the embedded log and store.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address the gateway listens on (WebSocket + HTTP).
    #[arg(long)]
    listen: Option<String>,
    /// Token secret (HMAC-SHA256, at least 16 bytes).
    #[arg(long, env = "SEQLINE_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process on the embedded ports (zero setup).
    Dev(ServeArgs),
    /// Run the gateway role only.
    Gateway(ServeArgs),
    /// Run the persister role only (sequencer + timeline writer).
    Persister(ServeArgs),
    /// Run the fanout role only.
    Fanout(ServeArgs),
    /// Mint a token for a user's device.
    Token {
        /// The user id.
        #[arg(long)]
        user: String,
        /// The device id.
        #[arg(long, default_value = "cli")]
        device: String,
        /// How long it is valid, e.g. 24h, 30m.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Token secret (HMAC-SHA256).
        #[arg(long, env = "SEQLINE_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Print the effective configuration as TOML (secrets masked) and exit.
    Config,
    /// Probe a health endpoint: exit 0 on a 2xx answer, 1 otherwise (the
    /// container healthcheck; the image has no shell tools).
    Health {
        /// The endpoint: the gateway's `/healthz` or the `[health] listen`
        /// address of any role.
        #[arg(long, default_value = "http://127.0.0.1:7601/healthz")]
        url: String,
        /// How long to wait for the answer, e.g. 3s.
        #[arg(long, default_value = "3s")]
        timeout: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("seqline: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn serve(
    cli_config: Option<PathBuf>,
    args: ServeArgs,
    roles: Roles,
    dev: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let flags = Overrides {
        data: args.data,
        listen: args.listen,
        secret: args.secret,
        dev_secret: dev.then(|| DEV_SECRET.to_string()),
    };
    let config = config::load(cli_config.as_deref(), std::env::vars(), &flags)?;
    config.validate(roles.gateway)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("seqline")
        .build()
        .context("starting the runtime")?;
    // The OTLP exporter's connection lives on the runtime: made inside it,
    // and flushed (the guard dropped) after every role has stopped and the
    // stores are closed, while the runtime still runs.
    let telemetry = {
        let _inside = runtime.enter();
        supervisor::init_telemetry(&config.log, &config.telemetry, roles)
    };
    if let Ok(spec) = std::env::var("SEQLINE_FAILPOINTS") {
        let armed = seqline_core::failpoint::configure(&spec)
            .map_err(anyhow::Error::msg)
            .context("SEQLINE_FAILPOINTS")?;
        for (point, action, at) in armed {
            tracing::warn!(
                point,
                ?action,
                at,
                "failpoint armed: the process aborts or stops itself on this hit (chaos testing only)"
            );
        }
    }
    if dev && config.gateway.token_secret == DEV_SECRET {
        tracing::warn!(
            "using the built-in development token secret; set --secret or SEQLINE_SECRET outside development"
        );
    }
    let result = runtime.block_on(supervisor::run(config, roles));
    drop(telemetry);
    result
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let only = |gateway, persister, fanout| Roles {
        gateway,
        persister,
        fanout,
    };
    match cli.command {
        Command::Dev(args) => serve(cli.config, args, Roles::ALL, true),
        Command::Gateway(args) => serve(cli.config, args, only(true, false, false), false),
        Command::Persister(args) => serve(cli.config, args, only(false, true, false), false),
        Command::Fanout(args) => serve(cli.config, args, only(false, false, true), false),
        Command::Token {
            user,
            device,
            ttl,
            secret,
        } => {
            let flags = Overrides {
                secret,
                dev_secret: Some(DEV_SECRET.into()),
                ..Default::default()
            };
            let config = config::load(cli.config.as_deref(), std::env::vars(), &flags)?;
            let user = seqline_core::UserId::parse(user)?;
            let device = seqline_core::DeviceId::parse(device)?;
            let ttl = seqline_core::duration::parse(&ttl).map_err(anyhow::Error::msg)?;
            let key = seqline_core::token::TokenKey::new(config.gateway.token_secret.as_bytes());
            println!(
                "{}",
                key.sign(&user, &device, seqline_core::token::now_secs(), ttl.as_secs())
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Health { url, timeout } => {
            let timeout = seqline_core::duration::parse(&timeout).map_err(anyhow::Error::msg)?;
            match health::probe(&url, timeout) {
                Ok(status) => {
                    println!("{url}: {status}");
                    Ok(std::process::ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("seqline health: {e:#}");
                    Ok(std::process::ExitCode::FAILURE)
                }
            }
        }
        Command::Config => {
            let flags = Overrides {
                dev_secret: Some(DEV_SECRET.into()),
                ..Default::default()
            };
            let config = config::load(cli.config.as_deref(), std::env::vars(), &flags)?;
            config.validate(false)?;
            print!("{}", config.to_masked_toml()?);
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
