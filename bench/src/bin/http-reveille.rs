//! The hyper benchmark's server: reveille (see `bench::servers::http`).
fn main() {
    bench::servers::http::run_reveille(bench::ServerArgs::from_env());
}
