//! Echo server on reveille with the per-task I/O budget turned off: the
//! control for the flood workload.
fn main() {
    bench::servers::reveille::run_unbudgeted(bench::ServerArgs::from_env());
}
