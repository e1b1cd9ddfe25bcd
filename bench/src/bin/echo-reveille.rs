//! Echo server on reveille (single worker).
fn main() {
    bench::servers::reveille::run(bench::ServerArgs::from_env());
}
