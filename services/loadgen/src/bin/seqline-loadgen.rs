//! `seqline-loadgen w1|w2|w3|w4`: drive a workload against a running server,
//! print the report (table or `--json`); exit 1 when the checker or the
//! final phase found a problem. `idle` (W5) and `slow` measure what a
//! connection costs the server instead.

use anyhow::{bail, Result};
use clap::Parser;
use seqline_loadgen::{run, Mode, RunOptions, Workload};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Drive a seqline workload and check the history")]
struct Args {
    /// w1 (direct chats), w2 (groups), w3 (catch-up), w4 (one huge group),
    /// idle (W5: idle connections) or slow (clients that stop reading).
    workload: String,
    /// WebSocket URL of the server.
    #[arg(long, default_value = "ws://127.0.0.1:7600/v1/ws")]
    url: String,
    /// HTTP base (defaults to the WebSocket URL's host).
    #[arg(long)]
    http: Option<String>,
    /// The server's token secret.
    #[arg(long, env = "SEQLINE_SECRET")]
    secret: String,
    /// W1: users.
    #[arg(long)]
    users: Option<usize>,
    /// W1, W2: messages in total.
    #[arg(long)]
    messages: Option<u64>,
    /// W1: share of users with two devices.
    #[arg(long, default_value_t = 0.1)]
    two_device_fraction: f64,
    /// W2: groups.
    #[arg(long)]
    groups: Option<usize>,
    /// W2: members per group; W4: members of the huge group.
    #[arg(long)]
    members: Option<usize>,
    /// W4: online devices (distinct members) following the group.
    #[arg(long)]
    online: Option<usize>,
    /// W4: length of the send phase, seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// W4: seconds between the admin's priority messages (0: none).
    #[arg(long)]
    priority_every: Option<f64>,
    /// W2: senders per group; W3: users sending to the offline one.
    #[arg(long)]
    senders: Option<usize>,
    /// W3: timeline entries to catch up on.
    #[arg(long)]
    entries: Option<u64>,
    /// Open loop at this many messages per second (all devices together;
    /// W4: the sender's rate, default 50).
    #[arg(long, conflicts_with = "window")]
    rate: Option<f64>,
    /// Closed loop with this many unacked sends per device (default 8).
    #[arg(long)]
    window: Option<usize>,
    /// Longest send phase, e.g. "60s".
    #[arg(long, default_value = "120s", value_parser = seqline_core::duration::parse)]
    duration: Duration,
    /// How long each final step may take, e.g. "60s".
    #[arg(long, default_value = "60s", value_parser = seqline_core::duration::parse)]
    settle: Duration,
    /// Group workloads: remove and re-add a random member of each group this
    /// often while messages flow (F12), e.g. "500ms".
    #[arg(long, value_parser = seqline_core::duration::parse)]
    churn: Option<Duration>,
    /// Write the history (JSON lines) here.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The server's pid, for RSS and CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seed of the plan.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// idle: connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// idle, slow: source addresses (127.0.0.2 and up) to spread connections over.
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// idle: how long the server's idle CPU is measured, e.g. "20s".
    #[arg(long, default_value = "20s", value_parser = seqline_core::duration::parse)]
    cpu_window: Duration,
    /// slow: members that stop reading.
    #[arg(long, default_value_t = 10)]
    slow: usize,
    /// slow: body size of each message, bytes.
    #[arg(long, default_value_t = 8000)]
    body: usize,
    /// slow: the devices read throughout (the control run).
    #[arg(long)]
    keep_reading: bool,
}

fn workload(a: &Args) -> Result<Workload> {
    let Some(mut w) = Workload::default_of(&a.workload) else {
        bail!("unknown workload `{}` (w1, w2, w3 or w4)", a.workload);
    };
    match &mut w {
        Workload::W1 {
            users,
            messages,
            two_device_fraction,
        } => {
            *users = a.users.unwrap_or(*users);
            *messages = a.messages.unwrap_or(*messages);
            *two_device_fraction = a.two_device_fraction;
        }
        Workload::W2 {
            groups,
            members,
            senders,
            messages,
        } => {
            *groups = a.groups.unwrap_or(*groups);
            *members = a.members.unwrap_or(*members);
            *senders = a.senders.unwrap_or(*senders);
            *messages = a.messages.unwrap_or(*messages);
        }
        Workload::W3 { entries, senders } => {
            *entries = a.entries.unwrap_or(*entries);
            *senders = a.senders.unwrap_or(*senders);
        }
        Workload::W4 {
            members,
            online,
            rate,
            seconds,
            priority_every,
        } => {
            *members = a.members.unwrap_or(*members);
            *online = a.online.unwrap_or(*online);
            *rate = a.rate.unwrap_or(*rate);
            *seconds = a.seconds.unwrap_or(*seconds);
            *priority_every = a.priority_every.unwrap_or(*priority_every);
        }
    }
    Ok(w)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match args.workload.as_str() {
        "idle" => return connection_cost(&args, true).await,
        "slow" => return connection_cost(&args, false).await,
        _ => {}
    }
    let mut opts = RunOptions::new(workload(&args)?, args.secret.clone());
    opts.http = match &args.http {
        Some(h) => h.clone(),
        None => seqline_client::HttpApi::base_of_ws_url(&args.url)?,
    };
    opts.url = args.url.clone();
    opts.mode = match args.rate {
        Some(rate) => Mode::OpenLoop { rate },
        None => Mode::ClosedLoop {
            window: args.window.unwrap_or(8),
        },
    };
    opts.max_duration = args.duration;
    opts.settle_timeout = args.settle;
    opts.history = args.history.clone();
    opts.server_pid = args.server_pid;
    opts.seed = args.seed;
    opts.churn = args.churn;
    opts.progress = !args.quiet;
    let report = run(opts).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}

/// `idle` and `slow`: what a connection costs the server.
async fn connection_cost(args: &Args, idle: bool) -> Result<()> {
    let http = match &args.http {
        Some(h) => h.clone(),
        None => seqline_client::HttpApi::base_of_ws_url(&args.url)?,
    };
    if idle {
        let report = seqline_loadgen::idle::run_idle(seqline_loadgen::idle::IdleOptions {
            url: args.url.clone(),
            secret: args.secret.clone(),
            connections: args.connections,
            sources: args.sources,
            window: args.cpu_window,
            server_pid: args.server_pid,
            run_id: None,
        })
        .await?;
        print_report(&report, args.json)
    } else {
        let report = seqline_loadgen::slow::run_slow(seqline_loadgen::slow::SlowOptions {
            url: args.url.clone(),
            http,
            secret: args.secret.clone(),
            slow: args.slow,
            messages: args.messages.unwrap_or(1000),
            body: args.body,
            senders: args.senders.unwrap_or(4),
            sources: args.sources,
            server_pid: args.server_pid,
            keep_reading: args.keep_reading,
        })
        .await?;
        print_report(&report, args.json)
    }
}

fn print_report(report: &(impl serde::Serialize + std::fmt::Display), json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
