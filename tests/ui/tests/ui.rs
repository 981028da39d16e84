//! Compile-time tests of `#[idempotent]`, run with trybuild.
//!
//! Every file under `pass/` must compile, and every file under `fail/<category>/` must
//! fail with exactly the errors in the `.stderr` file beside it. The snapshots are pinned to
//! rustc 1.95 because rustc rewords its diagnostics between releases, so the failure cases run
//! only on that version. After a deliberate change, regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test -p idempotent-ui-tests` and review the diff like code.

#[test]
fn ui_pass() {
    let cases = trybuild::TestCases::new();
    cases.pass("pass/*.rs");
}

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "the .stderr snapshots are pinned to rustc 1.95"
)]
#[test]
fn ui_fail() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("fail/*/*.rs");
}
