//! The example app's tests, one module per area in one test binary: the admin in a browser,
//! the CLI as a process, photos, and the schema on each backend. (`admin_http.rs`, which sets
//! the process-wide upload limit low, is a binary of its own.)
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used)]

mod admin;
mod cli;
mod list;
mod photo;
mod schema;

/// The media root of this test process, shared by its modules (it is process-wide, as
/// Django's `MEDIA_ROOT`): each names its files apart.
fn media_root() -> &'static std::path::Path {
    static ROOT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        example_account::set_media_root(dir.path());
        dir
    });
    root.path()
}
