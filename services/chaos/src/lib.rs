//! The chaos runner (W7 of WORKLOADS.md, faults F1-F14 of PROOF.md).

pub mod proxy;
