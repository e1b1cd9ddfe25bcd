//! Echo server on tokio's `current_thread` runtime.
fn main() {
    bench::servers::tokio::run(bench::ServerArgs::from_env());
}
