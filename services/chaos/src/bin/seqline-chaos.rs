//! `seqline-chaos --mode embedded|cluster`: W1 and W2 under a seeded fault
//! schedule, then heal, re-read and check. Prints the seed, the faults per
//! id and the count per check; exits 1 when anything was found.

use anyhow::{bail, Context, Result};
use clap::Parser;
use seqline_chaos::schedule::Fault;
use seqline_chaos::{run, ChaosOptions, Topology};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Chaos run: W1 + W2 under faults F1-F14, then the consistency checker")]
struct Args {
    /// embedded (one `seqline dev` process) or cluster (Apache Kafka, Apache
    /// Cassandra, redis-server and two processes of each role).
    #[arg(long, default_value = "embedded")]
    mode: String,
    /// Seed of the fault schedule and of the workloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Length of the fault (and send) phase, e.g. "5m".
    #[arg(long, default_value = "60s", value_parser = seqline_core::duration::parse)]
    duration: Duration,
    /// Longest quiet time between fault steps.
    #[arg(long, default_value = "3s", value_parser = seqline_core::duration::parse)]
    max_gap: Duration,
    /// Only faults with these fault ids, e.g. "F1,F10" (default: all of the mode).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// W1 users.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// W2 groups.
    #[arg(long, default_value_t = 10)]
    groups: usize,
    /// W2 members per group.
    #[arg(long, default_value_t = 20)]
    members: usize,
    /// W2 senders per group.
    #[arg(long, default_value_t = 5)]
    senders: usize,
    /// W2 membership churn period (F12).
    #[arg(long, default_value = "2s", value_parser = seqline_core::duration::parse)]
    churn: Duration,
    /// Unacked sends per device.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Most messages per workload (the duration usually ends the run first).
    #[arg(long, default_value_t = 10_000_000)]
    messages: u64,
    /// How long each final step may take.
    #[arg(long, default_value = "60s", value_parser = seqline_core::duration::parse)]
    settle: Duration,
    /// Working directory: histories, data, server log (default: a new
    /// directory under the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The `seqline` binary (default: next to this one).
    #[arg(long)]
    seqline_bin: Option<PathBuf>,
    /// Token secret for the servers the run starts.
    #[arg(long, env = "SEQLINE_SECRET", default_value = "chaos-secret-0123456789abcdef")]
    secret: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,seqline_chaos=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let topology = match a.mode.as_str() {
        "embedded" => Topology::Embedded,
        "cluster" | "kafka" => Topology::Cluster,
        other => bail!("unknown mode `{other}` (embedded or cluster)"),
    };
    let all = match topology {
        Topology::Embedded => Fault::embedded(),
        Topology::Cluster => Fault::cluster(),
    };
    let faults = if a.only.is_empty() {
        None
    } else {
        let chosen: Vec<Fault> = all
            .into_iter()
            .filter(|f| a.only.iter().any(|id| id == f.id()))
            .collect();
        if chosen.is_empty() {
            bail!("no fault of {} mode has an id in {:?}", a.mode, a.only);
        }
        Some(chosen)
    };
    let seqline_bin = match a.seqline_bin {
        Some(b) => b,
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("seqline"),
    };
    if !seqline_bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p seqline) or pass --seqline-bin",
            seqline_bin.display()
        );
    }
    let dir = a.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "seqline-chaos-{}-seed{}-{}",
            a.mode,
            a.seed,
            std::process::id()
        ))
    });
    eprintln!(
        "seqline-chaos: {} mode, seed {}, {:?} of faults; working in {}",
        a.mode,
        a.seed,
        a.duration,
        dir.display()
    );
    let report = run(ChaosOptions {
        topology,
        seed: a.seed,
        duration: a.duration,
        max_gap: a.max_gap,
        faults,
        each_once: false,
        users: a.users,
        groups: a.groups,
        members: a.members,
        senders: a.senders,
        churn: a.churn,
        window: a.window,
        messages: a.messages,
        settle: a.settle,
        dir,
        seqline_bin,
        secret: a.secret,
        progress: !a.quiet,
    })
    .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
