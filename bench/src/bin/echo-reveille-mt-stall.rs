//! `echo-reveille-mt` for the stuck-worker workload: a connection that
//! opens with `bench::STALL_MAGIC` blocks its worker thread for
//! `bench::STALL` on every read after that. A binary of its own, so that
//! `echo-reveille-mt` holds only the plain echo.
fn main() {
    bench::servers::reveille_mt::run_stalling(bench::ThreadedArgs::from_env(true));
}
