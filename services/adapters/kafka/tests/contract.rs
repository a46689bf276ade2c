//! The `Log` contract of `seqline-testkit` against `KafkaLog` on the shared
//! Apache Kafka broker of the run (`SEQLINE_TEST_KAFKA`), one test per check.

#![allow(clippy::unwrap_used)]

mod common;

mod log {
    seqline_testkit::log_tests!(crate::common::KafkaFixture::new());
}
