//! Glue for other crates' I/O traits, each behind the feature of the same
//! name: reveille's types implementing traits that another part of the
//! ecosystem defines.

#[cfg(feature = "hyper")]
pub mod hyper;
