//! Echo server: the floor of a futures-based design (a measuring
//! instrument; see `bench::servers::floor`). Not one of the servers `bench
//! all` compares; `bench count floor` counts its instructions.
fn main() {
    bench::servers::floor::run(bench::ServerArgs::from_env());
}
