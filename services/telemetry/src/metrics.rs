//! The process's metrics: plain atomics, bumped only by [`crate::events`],
//! rendered as Prometheus text (the gateway's `/metrics`) and, when OTLP is
//! configured, mirrored to the exporter on the same emit path.
//!
//! One registry per process, like the `metrics` crate's recorder behind
//! vector's `emit!`: every role of a process (all three in `seqline dev`)
//! counts into it, so the series are process totals.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The counters, each one series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Commands the gateway appended to the inbound topic.
    CommandsAccepted,
    /// Messages the sequencer stored with their `conv_seq`.
    MessagesCommitted,
    /// Timeline entries pushed to a device.
    Deliveries,
    /// Commands the sequencer had already decided (answered from the dedup window or store).
    DedupHits,
    /// Gaps that outlived the rectifier's timeout and became a `pull`.
    RectifierTimeouts,
    /// Sends that were dedup hits: a client resent a message.
    Resends,
    /// Conversation commits refused because another sequencer owns the head.
    FenceRefusals,
    /// Package fragments fanout sent to gateways.
    FanoutPackages,
    /// Coalesced "conversation advanced" notices fanout sent to gateways.
    FanoutNotices,
    /// High-priority messages fanout pushed in full to gateways.
    FanoutPriority,
    /// Group-commit fsyncs of the embedded engine (`seqline dev`).
    EngineFsyncs,
    /// Records a worker set aside on the dead-letter topic.
    DeadLetters,
}

impl Counter {
    /// Every counter, in rendering order.
    pub const ALL: [Counter; 12] = [
        Counter::CommandsAccepted,
        Counter::MessagesCommitted,
        Counter::Deliveries,
        Counter::DedupHits,
        Counter::RectifierTimeouts,
        Counter::Resends,
        Counter::FenceRefusals,
        Counter::FanoutPackages,
        Counter::FanoutNotices,
        Counter::FanoutPriority,
        Counter::EngineFsyncs,
        Counter::DeadLetters,
    ];

    /// The series name (the same in Prometheus text and over OTLP).
    pub const fn name(self) -> &'static str {
        match self {
            Counter::CommandsAccepted => "seqline_commands_accepted_total",
            Counter::MessagesCommitted => "seqline_messages_committed_total",
            Counter::Deliveries => "seqline_deliveries_total",
            Counter::DedupHits => "seqline_dedup_hits_total",
            Counter::RectifierTimeouts => "seqline_rectifier_timeouts_total",
            Counter::Resends => "seqline_resends_total",
            Counter::FenceRefusals => "seqline_fence_refusals_total",
            Counter::FanoutPackages => "seqline_fanout_packages_total",
            Counter::FanoutNotices => "seqline_fanout_notices_total",
            Counter::FanoutPriority => "seqline_fanout_priority_total",
            Counter::EngineFsyncs => "seqline_engine_fsyncs_total",
            Counter::DeadLetters => "seqline_dead_letters_total",
        }
    }

    /// One line of help.
    pub const fn help(self) -> &'static str {
        match self {
            Counter::CommandsAccepted => "Commands appended to the inbound topic by the gateway.",
            Counter::MessagesCommitted => "Messages stored with their conv_seq by the sequencer.",
            Counter::Deliveries => "Timeline entries pushed to devices.",
            Counter::DedupHits => "Commands answered from the dedup window or store.",
            Counter::RectifierTimeouts => "Push gaps that outlived the rectifier timeout and became a pull.",
            Counter::Resends => "Sends that were dedup hits (client resends).",
            Counter::FenceRefusals => "Conversation commits refused: another sequencer owns the head.",
            Counter::FanoutPackages => "Package fragments sent by fanout to gateways.",
            Counter::FanoutNotices => "Coalesced conversation-advanced notices sent by fanout to gateways.",
            Counter::FanoutPriority => "High-priority messages pushed in full by fanout to gateways.",
            Counter::EngineFsyncs => "Group-commit fsyncs of the embedded engine (one per group of durable writes).",
            Counter::DeadLetters => "Records set aside on the dead-letter topic (undecodable or refused for good).",
        }
    }
}

/// What an end-to-end latency measures (the `stage` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// From the message's `server_ts_ms` (sequenced) to its push to a device,
    /// measured at the gateway.
    Push,
    /// From the command's arrival at the gateway (`sent_ms`) to its receipt
    /// (ack or nack) being emitted by the sequencer.
    Ack,
}

impl Stage {
    /// Every stage, in rendering order.
    pub const ALL: [Stage; 2] = [Stage::Push, Stage::Ack];

    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            Stage::Push => "push",
            Stage::Ack => "ack",
        }
    }
}

/// Name of the latency histogram.
pub const LATENCY: &str = "seqline_e2e_latency_ms";
const LATENCY_HELP: &str =
    "End-to-end latency in milliseconds: stage=push (sequenced to pushed), stage=ack (accepted to receipt).";

/// Upper bounds of the latency buckets, in milliseconds (shared with OTLP).
pub const LATENCY_BOUNDS_MS: [u64; 14] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000];

const N_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// A histogram with fixed buckets; the last bucket is `+Inf`.
#[derive(Debug)]
struct Histogram {
    buckets: [AtomicU64; N_BUCKETS],
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; N_BUCKETS],
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: u64) {
        let i = LATENCY_BOUNDS_MS.partition_point(|b| *b < v);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Name of the consumer lag gauge.
pub const CONSUMER_LAG: &str = "seqline_consumer_lag_records";
const CONSUMER_LAG_HELP: &str =
    "Records a consumer group has not read yet, per topic and partition, as this process's consumers see them.";

/// One consumer's lag on each partition of its topic: registered when the
/// consumer starts, set by its log adapter as it reads (an atomic store),
/// gone from `/metrics` once the consumer is dropped.
#[derive(Debug)]
pub struct LagGauge {
    group: String,
    topic: String,
    partitions: Box<[AtomicU64]>,
}

impl LagGauge {
    /// Registers the gauge of `group` reading `topic` (all partitions 0).
    pub fn register(group: &str, topic: &str, partitions: u32) -> Arc<LagGauge> {
        let gauge = Arc::new(LagGauge {
            group: group.to_string(),
            topic: topic.to_string(),
            partitions: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        });
        let mut lags = GLOBAL.lags.lock().unwrap_or_else(PoisonError::into_inner);
        lags.retain(|w| w.strong_count() > 0);
        lags.push(Arc::downgrade(&gauge));
        gauge
    }

    /// The lag on `partition` (ignored past the topic's partitions).
    pub fn set(&self, partition: u32, records: u64) {
        if let Some(p) = self.partitions.get(partition as usize) {
            p.store(records, Ordering::Relaxed);
        }
    }
}

/// The process's counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    counters: [AtomicU64; Counter::ALL.len()],
    latency: [Histogram; Stage::ALL.len()],
    lags: Mutex<Vec<Weak<LagGauge>>>,
}

static GLOBAL: Metrics = Metrics::new();

impl Metrics {
    const fn new() -> Self {
        Self {
            counters: [const { AtomicU64::new(0) }; Counter::ALL.len()],
            latency: [const { Histogram::new() }; Stage::ALL.len()],
            lags: Mutex::new(Vec::new()),
        }
    }

    /// The process's registry.
    pub fn global() -> &'static Metrics {
        &GLOBAL
    }

    /// The current value of `counter`.
    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters[counter as usize].load(Ordering::Relaxed)
    }

    /// How many latencies of `stage` were observed.
    pub fn latency_count(&self, stage: Stage) -> u64 {
        self.latency[stage as usize].count.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn observe(&self, stage: Stage, ms: u64) {
        self.latency[stage as usize].observe(ms);
    }

    /// Appends every series to `out` in the Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        for c in Counter::ALL {
            let name = c.name();
            let _ = writeln!(
                out,
                "# HELP {name} {}\n# TYPE {name} counter\n{name} {}",
                c.help(),
                self.counter(c)
            );
        }
        let _ = writeln!(out, "# HELP {LATENCY} {LATENCY_HELP}\n# TYPE {LATENCY} histogram");
        for stage in Stage::ALL {
            let h = &self.latency[stage as usize];
            let label = stage.label();
            let mut cumulative = 0;
            for (i, bucket) in h.buckets.iter().enumerate() {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = LATENCY_BOUNDS_MS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), u64::to_string);
                let _ = writeln!(out, "{LATENCY}_bucket{{stage=\"{label}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "{LATENCY}_sum{{stage=\"{label}\"}} {}\n{LATENCY}_count{{stage=\"{label}\"}} {cumulative}",
                h.sum.load(Ordering::Relaxed)
            );
        }
        self.render_lags(out);
    }

    /// The consumer groups with a consumer running in this process (each
    /// consumer registers its lag gauge when it joins and drops it when it
    /// stops): a role's readiness.
    pub fn consumer_groups(&self) -> std::collections::BTreeSet<String> {
        let lags = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        lags.iter().filter_map(Weak::upgrade).map(|g| g.group.clone()).collect()
    }

    /// The lag of `group` on `topic`'s `partition` as `/metrics` shows it;
    /// `None` when no consumer of the group on that topic is registered.
    pub fn consumer_lag(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        let lags = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        lags.iter()
            .filter_map(Weak::upgrade)
            .filter(|g| g.group == group && g.topic == topic)
            .filter_map(|g| g.partitions.get(partition as usize).map(|p| p.load(Ordering::Relaxed)))
            .max()
    }

    /// The lag gauges; two consumers of one group and topic in this process
    /// (a test, a restart in progress) give the larger lag per partition.
    fn render_lags(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {CONSUMER_LAG} {CONSUMER_LAG_HELP}\n# TYPE {CONSUMER_LAG} gauge"
        );
        let gauges: Vec<Arc<LagGauge>> = self
            .lags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut series = std::collections::BTreeMap::new();
        for g in &gauges {
            for (p, lag) in g.partitions.iter().enumerate() {
                let v = series.entry((g.group.as_str(), g.topic.as_str(), p)).or_insert(0);
                *v = lag.load(Ordering::Relaxed).max(*v);
            }
        }
        for ((group, topic, partition), lag) in series {
            let _ = writeln!(
                out,
                "{CONSUMER_LAG}{{group=\"{group}\",topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_gauges_render_per_partition_and_leave_with_their_consumer() {
        let a = LagGauge::register("g-lag-test", "t.inbound", 2);
        let b = LagGauge::register("g-lag-test", "t.inbound", 2);
        a.set(1, 7);
        b.set(1, 3);
        b.set(0, 2);
        a.set(9, 1); // past the partitions: ignored
        let mut text = String::new();
        Metrics::global().render_prometheus(&mut text);
        assert!(text.contains("# TYPE seqline_consumer_lag_records gauge\n"), "{text}");
        assert!(
            text.contains("seqline_consumer_lag_records{group=\"g-lag-test\",topic=\"t.inbound\",partition=\"1\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("{group=\"g-lag-test\",topic=\"t.inbound\",partition=\"0\"} 2\n"));
        assert_eq!(Metrics::global().consumer_lag("g-lag-test", "t.inbound", 1), Some(7));
        drop((a, b));
        assert_eq!(Metrics::global().consumer_lag("g-lag-test", "t.inbound", 1), None);
        let mut text = String::new();
        Metrics::global().render_prometheus(&mut text);
        assert!(!text.contains("g-lag-test"), "{text}");
    }

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::new();
        m.add(Counter::Resends, 2);
        m.observe(Stage::Push, 0);
        m.observe(Stage::Push, 7);
        m.observe(Stage::Push, 60_000);
        let mut text = String::new();
        m.render_prometheus(&mut text);
        assert!(
            text.contains("# TYPE seqline_resends_total counter\nseqline_resends_total 2\n"),
            "{text}"
        );
        assert!(text.contains("seqline_commands_accepted_total 0\n"));
        assert!(text.contains("# TYPE seqline_e2e_latency_ms histogram\n"));
        assert!(
            text.contains("seqline_e2e_latency_ms_bucket{stage=\"push\",le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("seqline_e2e_latency_ms_bucket{stage=\"push\",le=\"5\"} 1\n"));
        assert!(text.contains("seqline_e2e_latency_ms_bucket{stage=\"push\",le=\"10\"} 2\n"));
        assert!(text.contains("seqline_e2e_latency_ms_bucket{stage=\"push\",le=\"30000\"} 2\n"));
        assert!(text.contains("seqline_e2e_latency_ms_bucket{stage=\"push\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("seqline_e2e_latency_ms_sum{stage=\"push\"} 60007\n"));
        assert!(text.contains("seqline_e2e_latency_ms_count{stage=\"push\"} 3\n"));
        assert!(text.contains("seqline_e2e_latency_ms_count{stage=\"ack\"} 0\n"));
        // Every sample line is `name{labels} value`, names unique per TYPE line.
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(types, Counter::ALL.len() + 2);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
    }

    #[test]
    fn a_bound_is_inclusive() {
        let h = Histogram::new();
        h.observe(1);
        h.observe(2);
        assert_eq!(h.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(h.buckets[1].load(Ordering::Relaxed), 1);
    }
}
