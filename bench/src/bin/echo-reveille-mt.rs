//! Echo server on reveille with `--workers N` worker threads (default 2):
//! one accept loop and placed spawns, or with `--reuseport` one listener
//! per worker (see `bench::servers::reveille_mt`).
fn main() {
    bench::servers::reveille_mt::run(bench::ThreadedArgs::from_env(true));
}
