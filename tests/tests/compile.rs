//! The derive's diagnostics: every misuse is a compile error on the user's own token.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite` and review them caret by caret.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    for area in [
        "attr", "shape", "receiver", "relation", "runtime", "query", "field",
    ] {
        t.compile_fail(format!("tests/ui/{area}/*.rs"));
    }
}
