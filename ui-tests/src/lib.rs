//! The compile-fail suite of `#[derive(Model)]` and the query builder: `tests/compile.rs` runs
//! the cases in `tests/ui/<area>/` with trybuild, each a misuse that must be a compile error
//! pointing at the user's own token. This package has no code of its own; it exists so that
//! trybuild checks only the dependencies the cases use.
