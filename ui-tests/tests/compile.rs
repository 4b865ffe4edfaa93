//! The derive's diagnostics: every misuse is a compile error on the user's own token.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite` and review them caret by caret.
//! `SIGNALS_UI=query` (a comma-separated list of areas) runs only those. What must compile
//! and run is `tests/tests/integration/derive_pass.rs` in the `signals-tests` package: with only cases that must fail, trybuild checks
//! (`cargo check`) instead of building every dependency.

#[test]
fn ui() {
    // trybuild finds cargo through `CARGO`, which cargo sets for this process: the suite runs
    // in a child of its own whose `CARGO` is `same-flags-cargo` (see there), so that the
    // cases' dependencies are checked once rather than twice.
    if std::env::var_os("SIGNALS_UI_CHILD").is_none() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let wrapper = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("same-flags-cargo");
        let status = std::process::Command::new(std::env::current_exe().expect("this test"))
            .args(["--exact", "ui", "--nocapture", "--test-threads=1"])
            .env("SIGNALS_UI_CHILD", "1")
            .env("SIGNALS_UI_REAL_CARGO", cargo)
            .env("CARGO", wrapper)
            .status()
            .expect("the suite's process");
        assert!(status.success(), "the compile-fail suite failed: {status}");
        return;
    }
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
