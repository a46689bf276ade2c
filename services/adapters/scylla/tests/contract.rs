#![allow(clippy::unwrap_used)]
//! The testkit `Store` contract against a real CQL server, one test per
//! check: the shared Apache Cassandra node of the run (standing in for
//! ScyllaDB, see docs/cassandra.md), named by `SEQLINE_TEST_CASSANDRA`.
//! Without it every check fails and says how to start one.

mod common;

use async_trait::async_trait;
use seqline_core::ports::Store;
use seqline_scylla::{ScyllaOptions, ScyllaStore};
use seqline_testkit::Harness;
use std::sync::Arc;

pub struct ScyllaFixture {
    options: ScyllaOptions,
}

pub fn fixture() -> ScyllaFixture {
    ScyllaFixture {
        options: common::shared(common::KEYSPACE),
    }
}

#[async_trait]
impl Harness<dyn Store> for ScyllaFixture {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(ScyllaStore::connect(self.options.clone()).await.unwrap())
    }

    /// A keyspace of its own, new: what a wiped store looks like.
    async fn open_other(&self) -> Option<Arc<dyn Store>> {
        let keyspace = format!("seqline_fresh_{}", uuid::Uuid::new_v4().simple());
        let options = common::shared(&keyspace);
        let store = ScyllaStore::connect(options).await.unwrap();
        Some(Arc::new(store))
    }
}

mod scylla {
    seqline_testkit::store_tests!(crate::fixture());
}
