//! `echo-tokio-mt` for the stuck-worker workload: a connection that opens
//! with `bench::STALL_MAGIC` blocks its worker thread for `bench::STALL` on
//! every read after that. A binary of its own, so that `echo-tokio-mt`
//! holds only the plain echo.
fn main() {
    bench::servers::tokio::run_multi_thread_stalling(bench::ThreadedArgs::from_env(false));
}
