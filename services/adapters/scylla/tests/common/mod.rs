//! What the test binaries share: options for the shared Cassandra node.
#![allow(dead_code)]

use seqline_scylla::ScyllaOptions;

/// Options for `nodes` (comma-separated `host:port`) and `keyspace`:
/// replication factor 1 (one node), small buckets so paging crosses them.
pub fn options(nodes: &str, keyspace: &str) -> ScyllaOptions {
    ScyllaOptions {
        nodes: nodes.split(',').map(str::to_string).collect(),
        keyspace: keyspace.into(),
        replication_factor: 1,
        // Fixed per keyspace (a store configured otherwise refuses it): every
        // keyspace of these tests uses 10.
        bucket_size: 10,
        ..ScyllaOptions::default()
    }
}

/// Options for the shared node of the run ([`seqline_testkit::cassandra::shared_nodes`])
/// and the keyspace every test binary shares: creating keyspaces and
/// tables costs seconds on Cassandra, and the checks use fresh ids, so one
/// keyspace serves every test and every run.
pub fn shared(keyspace: &str) -> ScyllaOptions {
    options(&seqline_testkit::cassandra::shared_nodes(), keyspace)
}

/// The keyspace the tests of the shared node use.
pub const KEYSPACE: &str = "seqline_tests";
