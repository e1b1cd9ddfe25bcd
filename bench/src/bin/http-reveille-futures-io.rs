//! The hyper benchmark's server: reveille-futures-io (see `bench::servers::http`).
fn main() {
    bench::servers::http::run_futures_io(bench::ServerArgs::from_env());
}
