//! The port contract suites of `seqline-testkit`, run against the embedded
//! adapters, one test per check, each in its own directory.

mod common;

mod store {
    seqline_testkit::store_tests!(crate::common::StoreFixture::new());
}

mod log {
    seqline_testkit::log_tests!(crate::common::LogFixture::new());
}

mod presence {
    seqline_testkit::presence_tests!(crate::common::PresenceFixture);
}
