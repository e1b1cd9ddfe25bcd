//! Echo server on async-io with a single-threaded async-executor.
fn main() {
    bench::servers::async_io::run(bench::ServerArgs::from_env());
}
