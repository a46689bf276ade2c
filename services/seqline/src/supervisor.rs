//! One supervisor for the process: a root cancellation token, named tasks,
//! fail fast (a task that fails cancels the rest and sets the exit code; the
//! orchestrator restarts, not an in-process loop). The first SIGINT/SIGTERM
//! drains in order with a deadline — gateway, then fanout, then persister,
//! then the stores close, telemetry flushes last (its guard outlives
//! [`run`]) — and a second one aborts.

use crate::config::{Config, LogConfig};
use crate::ports;
use anyhow::Context;
use seqline_telemetry::TelemetryConfig;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Installs logging (`RUST_LOG` wins over the config) and, when
/// `[telemetry] otlp_endpoint` is set, trace and metric export. Call it
/// inside the runtime; keep the guard until [`run`] has returned.
pub fn init_telemetry(log: &LogConfig, telemetry: &TelemetryConfig, roles: Roles) -> seqline_telemetry::Guard {
    let settings = seqline_telemetry::LogSettings {
        level: &log.level,
        json: log.format == "json",
    };
    seqline_telemetry::init(&settings, telemetry, roles.name())
}

struct Task {
    name: &'static str,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

fn spawn<F>(
    name: &'static str,
    root: &CancellationToken,
    failed: &Arc<AtomicBool>,
    fut: impl FnOnce(CancellationToken) -> F,
) -> Task
where
    F: std::future::Future<Output = seqline_core::Result<()>> + Send + 'static,
{
    let stop = CancellationToken::new();
    let fut = fut(stop.clone());
    let root = root.clone();
    let failed = Arc::clone(failed);
    let handle = tokio::spawn(async move {
        let result = fut.await;
        if !root.is_cancelled() {
            match &result {
                Ok(()) => tracing::error!(task = name, "task stopped unexpectedly"),
                Err(e) => tracing::error!(task = name, error = %e, "task failed"),
            }
            failed.store(true, Ordering::SeqCst);
            root.cancel();
        } else if let Err(e) = result {
            tracing::warn!(task = name, error = %e, "task failed while draining");
        }
    });
    Task { name, stop, handle }
}

/// Which roles this process runs.
#[derive(Clone, Copy, Debug)]
pub struct Roles {
    /// WebSocket + HTTP.
    pub gateway: bool,
    /// Sequencer + timeline writer.
    pub persister: bool,
    /// Fanout.
    pub fanout: bool,
}

impl Roles {
    /// Every role (`seqline dev`).
    pub const ALL: Roles = Roles {
        gateway: true,
        persister: true,
        fanout: true,
    };

    /// How the process is named in telemetry (`seqline-<name>`).
    pub fn name(self) -> &'static str {
        match (self.gateway, self.persister, self.fanout) {
            (true, true, true) => "dev",
            (true, false, false) => "gateway",
            (false, true, false) => "persister",
            (false, false, true) => "fanout",
            _ => "mixed",
        }
    }
}

/// Runs `roles` until a signal or a failure.
pub async fn run(config: Config, roles: Roles) -> anyhow::Result<ExitCode> {
    let opened = ports::open(&config.ports).await?;
    let listener = match roles.gateway {
        true => Some(
            tokio::net::TcpListener::bind(&config.gateway.listen.to_string())
                .await
                .with_context(|| format!("listening on {}", config.gateway.listen))?,
        ),
        false => None,
    };
    let root = CancellationToken::new();
    let failed = Arc::new(AtomicBool::new(false));
    watch_signals(root.clone());
    if let Some(addr) = config.health.listen {
        crate::health::spawn(addr, root.clone(), readiness(&config, roles, &opened)).await?;
    }

    let persister = roles.persister.then(|| {
        let p = seqline_persister::Ports {
            log: opened.log.clone(),
            store: opened.store.clone(),
        };
        let c = config.persister.clone();
        spawn("persister", &root, &failed, move |stop| {
            seqline_persister::run(c, p, stop)
        })
    });
    let fanout = roles.fanout.then(|| {
        let p = seqline_fanout::Ports {
            log: opened.log.clone(),
            presence: opened.presence.clone(),
        };
        let c = config.fanout.clone();
        spawn("fanout", &root, &failed, move |stop| seqline_fanout::run(c, p, stop))
    });
    let mut addr = None;
    let gateway = match listener {
        Some(listener) => {
            addr = Some(listener.local_addr().context("reading the listen address")?);
            let p = seqline_gateway::Ports {
                log: opened.log.clone(),
                store: opened.store.clone(),
                presence: opened.presence.clone(),
            };
            let c = config.gateway.clone();
            Some(spawn("gateway", &root, &failed, move |stop| async move {
                seqline_gateway::serve(c, p, listener, stop)
                    .await
                    .map_err(|e| seqline_core::Error::Unavailable(e.to_string()))
            }))
        }
        None => None,
    };
    match addr {
        Some(addr) if roles.persister && roles.fanout => print_banner(addr),
        Some(addr) => println!("seqline gateway listening on {addr}"),
        None => println!(
            "seqline {} running",
            if roles.persister { "persister" } else { "fanout" }
        ),
    }
    {
        use std::io::Write;
        std::io::stdout().flush().ok();
    }
    root.cancelled().await;
    tracing::info!("draining");
    for task in [gateway, fanout, persister].into_iter().flatten() {
        task.stop.cancel();
        if tokio::time::timeout(DRAIN_DEADLINE, task.handle).await.is_err() {
            tracing::warn!(task = task.name, "did not stop within the drain deadline");
        }
    }
    opened.close().await;
    tracing::info!("stopped");
    Ok(if failed.load(Ordering::SeqCst) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What `/readyz` checks for `roles`: a consumer runs for each of their
/// consumer groups, the persister's store answers a read, fanout's presence
/// answers a lookup. (The gateway has its own `/readyz`.)
fn readiness(config: &Config, roles: Roles, opened: &ports::Opened) -> crate::health::Ready {
    let mut groups = Vec::new();
    if roles.persister {
        groups.extend([
            config.persister.sequencer_group.clone(),
            config.persister.timeline_group.clone(),
        ]);
    }
    if roles.fanout {
        let f = &config.fanout;
        groups.extend([f.group.clone(), f.conv_group.clone(), f.priority_group.clone()]);
    }
    let store = roles.persister.then(|| opened.store.clone());
    let presence = roles.fanout.then(|| opened.presence.clone());
    Arc::new(move || {
        let (groups, store, presence) = (groups.clone(), store.clone(), presence.clone());
        Box::pin(async move {
            let running = seqline_telemetry::Metrics::global().consumer_groups();
            let missing: Vec<&str> = groups
                .iter()
                .filter(|g| !running.contains(*g))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(format!("no consumer running yet in group {}", missing.join(", ")));
            }
            // A conversation nobody has: one real read, nothing written.
            let probe = seqline_core::ConversationId::parse("g:readiness-probe").map_err(|e| e.to_string())?;
            if let Some(store) = store {
                store
                    .conversation_head(&probe)
                    .await
                    .map_err(|e| format!("store: {e}"))?;
            }
            if let Some(presence) = presence {
                presence
                    .followers(&[probe])
                    .await
                    .map_err(|e| format!("presence: {e}"))?;
            }
            Ok(())
        })
    })
}

fn watch_signals(root: CancellationToken) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                return;
            }
        };
        let mut count = 0;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            count += 1;
            if count == 1 {
                tracing::info!("signal received, draining (send again to abort)");
                root.cancel();
            } else {
                eprintln!("seqline: second signal, aborting");
                std::process::exit(130);
            }
        }
    });
}

fn print_banner(addr: std::net::SocketAddr) {
    // Scripts (and tests) wait for this line.
    println!("seqline dev listening on {addr}");
    println!();
    println!("  WebSocket  ws://{addr}/v1/ws");
    println!("  HTTP API   http://{addr}/v1/conversations   health: http://{addr}/healthz");
    println!();
    println!("  mint a token:   seqline token --user alice --device laptop");
    println!("  chat:           seqline-chat --url ws://{addr}/v1/ws --token $(seqline token --user alice)");
    println!();
    use std::io::Write;
    std::io::stdout().flush().ok();
}
