//! Echo server: a hand-written edge-triggered mio loop.
fn main() {
    bench::servers::mio_loop::run(bench::ServerArgs::from_env());
}
