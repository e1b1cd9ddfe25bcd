//! Other crates' I/O traits, implemented natively for reveille's streams:
//! each outside crate has a module here, compiled only under the Cargo
//! feature of the same name (off by default).
//!
//! | feature | module | traits |
//! |---|---|---|
//! | `tokio-io` | `tokio_io` | `tokio::io::{AsyncRead, AsyncWrite}` |
//! | `hyper` | `hyper` | `hyper::rt::{Read, Write}`, `Executor`, `Timer` |

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-io")]
pub mod tokio_io;
