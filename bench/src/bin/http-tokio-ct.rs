//! The hyper benchmark's server: tokio-ct (see `bench::servers::http`).
fn main() {
    bench::servers::http::run_tokio(bench::ServerArgs::from_env());
}
