//! The echo servers under test, one per runtime, all with the same logic.

pub mod async_io;
pub mod floor;
pub mod http;
pub mod mio_loop;
pub mod reveille;
pub mod reveille_mt;
pub mod tokio;
