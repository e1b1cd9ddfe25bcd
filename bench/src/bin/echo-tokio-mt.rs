//! Echo server on tokio's `multi_thread` runtime, with `--workers N` worker
//! threads (default 2).
fn main() {
    bench::servers::tokio::run_multi_thread(bench::ThreadedArgs::from_env(false));
}
