//! The derive's diagnostics: every misuse is a compile error on the user's own token.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite` and review them caret by caret.
//! `SIGNALS_UI=query` (a comma-separated list of areas) runs only those. What must compile
//! and run is `tests/tests/integration/derive_pass.rs` in the `signals-tests` package: with only cases that must fail, trybuild checks
//! (`cargo check`) instead of building every dependency.

#[test]
fn ui() {
    let only = std::env::var("SIGNALS_UI").ok();
    let wanted = |area: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|a| a.trim() == area))
    };
    let t = trybuild::TestCases::new();
    for area in [
        "attr", "shape", "receiver", "relation", "runtime", "query", "field",
    ] {
        if wanted(area) {
            t.compile_fail(format!("tests/ui/{area}/*.rs"));
        }
    }
}
