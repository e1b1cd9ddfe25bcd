//! Glue between reveille and other crates' traits, one module per crate,
//! each behind the feature of that crate's name.

#[cfg(feature = "quinn")]
pub mod quinn;
