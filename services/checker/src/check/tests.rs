//! Unit tests: a small clean history, and per check a history with exactly
//! that anomaly (or, where one anomaly implies another, the documented set).

mod builder;
mod cases_clocks;
mod cases_delivery;
mod cases_diffusion;
mod cases_order;
mod cases_streams;

use crate::report::{CheckId, Report};

/// Asserts the checks with a nonzero count are exactly `ids`, and that the
/// first one's witnesses mention `culprit`.
fn assert_only(report: &Report, ids: &[CheckId], culprit: &str) {
    let nonzero: Vec<CheckId> = CheckId::ALL.into_iter().filter(|id| report.count(*id) > 0).collect();
    assert_eq!(nonzero, ids, "{report}");
    let w = report.witnesses(ids[0]).join("\n");
    assert!(
        w.contains(culprit),
        "{:?} witnesses do not name {culprit}:\n{report}",
        ids[0]
    );
}
