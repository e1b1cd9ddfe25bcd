//! The benchmark runner: starts each server and the load generator on
//! separate cores, interleaves the servers over several rounds, and reports.

pub mod counters;
pub mod fairness;
pub mod framed;
pub mod hyper;
pub mod imbalance;
pub mod procs;
pub mod report;
pub mod scale;
pub mod soak;
pub mod threads;
pub mod workloads;
