//! `seqline`: one binary, one subcommand per way of running.
//!
//! - `seqline dev`: gateway + persister + fanout in one process on the
//!   embedded ports, zero setup.
//! - `seqline token`: mints a development token.
//! - `seqline config`: prints the effective configuration.

mod config;
mod ports;
mod supervisor;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::Overrides;
use std::path::PathBuf;

/// The development token secret used when none is configured. `seqline dev`
/// warns about it; never use it in production.
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

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process on the embedded ports.
    Dev {
        /// Data directory of the embedded log and store.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Address to listen on (WebSocket + HTTP).
        #[arg(long)]
        listen: Option<String>,
        /// Token secret (HMAC-SHA256).
        #[arg(long, env = "SEQLINE_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
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
    /// Print the effective configuration (secrets masked) and exit.
    Config,
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

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let env = std::env::vars();
    match cli.command {
        Command::Dev { data, listen, secret } => {
            let flags = Overrides {
                data,
                listen,
                secret,
                dev_secret: Some(DEV_SECRET.into()),
            };
            let config = config::load(cli.config.as_deref(), env, &flags)?;
            supervisor::init_tracing(&config.log);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("seqline")
                .build()
                .context("starting the runtime")?;
            runtime.block_on(supervisor::dev(config))
        }
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
            let config = config::load(cli.config.as_deref(), env, &flags)?;
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
        Command::Config => {
            let flags = Overrides {
                dev_secret: Some(DEV_SECRET.into()),
                ..Default::default()
            };
            let config = config::load(cli.config.as_deref(), env, &flags)?;
            println!("{config:#?}");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
