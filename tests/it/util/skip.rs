//! Tests that cannot run on this machine (no IPv6 loopback, no privilege to
//! make a network namespace, a kernel setting that changes what is tested)
//! say so and pass, or, where the run asks that nothing be skipped, fail.
//!
//! A skip is written straight to the process's stderr: libtest captures
//! `eprintln!` and shows it only for a failing test, which would make the
//! skip silent. CI sets [`REQUIRE_ALL`], so that a test that tested nothing
//! cannot pass there.

use std::fmt::Display;
use std::io::Write;

/// Set to `1` to make every skip a failure (CI sets it).
pub const REQUIRE_ALL: &str = "REVEILLE_REQUIRE_ALL";

/// The older switch, for the network-namespace skips only; still honoured.
pub const REQUIRE_NETNS: &str = "REVEILLE_REQUIRE_NETNS";

/// Skips the calling test (or the part of it that `reason` names): prints
/// why, or panics if [`REQUIRE_ALL`] is `1`. The caller then returns.
#[track_caller]
pub fn skip(reason: impl Display) {
    skip_unless(&[REQUIRE_ALL], reason);
}

/// [`skip`] for a test that needs network namespaces, which
/// [`REQUIRE_NETNS`] also turns into a failure.
#[track_caller]
pub fn skip_netns(reason: impl Display) {
    skip_unless(&[REQUIRE_ALL, REQUIRE_NETNS], reason);
}

#[track_caller]
fn skip_unless(vars: &[&str], reason: impl Display) {
    // libtest names each test's thread after the test.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    if let Some(var) = vars
        .iter()
        .find(|var| std::env::var(var).is_ok_and(|v| v == "1"))
    {
        panic!("{test}: {reason}; {var}=1 forbids skipping");
    }
    // One write, so that libtest's own lines cannot cut it in two.
    let line = format!("SKIPPED {test}: {reason} (set {REQUIRE_ALL}=1 to make this a failure)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}
