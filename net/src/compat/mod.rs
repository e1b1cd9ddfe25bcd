//! Other crates' I/O traits, implemented natively for reveille's streams:
//! each outside crate has a module here, compiled only under the Cargo
//! feature of the same name (off by default).
//!
//! | feature | module | traits |
//! |---|---|---|
//! | `tokio-io` | `tokio_io` | `tokio::io::{AsyncRead, AsyncWrite}` |
//! | `hyper` | `hyper` | `hyper::rt::{Read, Write}`, `Executor`, `Timer` |
//! | `quinn` | `quinn` | `quinn::Runtime` (tasks, timers, the UDP socket through quinn-udp) |

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "quinn")]
pub mod quinn;
#[cfg(feature = "tokio-io")]
pub mod tokio_io;
