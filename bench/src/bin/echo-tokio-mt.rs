//! Echo server on tokio's `multi_thread` runtime.
fn main() {
    bench::servers::tokio::run(bench::ServerArgs::from_env(), true);
}
