//! `serve`: the seed's Django admin for `Profile` (`list_display = ['user', 'date_of_birth',
//! 'photo']`) as a web site on the same models, receivers and database as the CLI.
//!
//! - Staff users log in with their Argon2id password; the session is an encrypted, signed
//!   cookie (`HttpOnly`, `SameSite=Strict`, `axum-extra`'s private jar), and every form carries
//!   the session's CSRF token, checked before anything is done.
//! - The profile list searches by username, orders by each column and shows 25 a page.
//! - Users are added through `User::create_user` (their profile comes from `create_profile`),
//!   profiles changed through `set_dob`/`set_photo`, users deleted through `delete_user` after
//!   a confirmation page listing what the cascade deletes.
//! - Templates are minijinja's, auto-escaping every value; form errors show beside the field.

mod error;
mod extract;
mod session;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum_extra::extract::cookie::Key;
use minijinja::Environment;
use signals_core::Db;
use tower_http::services::ServeDir;

use crate::Error;

/// What every request of the admin site shares.
#[derive(Clone)]
pub struct AdminState(Arc<Inner>);

struct Inner {
    db: Db,
    key: Key,
}

impl FromRef<AdminState> for Key {
    fn from_ref(state: &AdminState) -> Key {
        state.0.key.clone()
    }
}

impl AdminState {
    /// The site's state over `db`; `key` encrypts and signs the session cookies (a key of
    /// the process's own when `None`: sessions end when it stops).
    pub fn new(db: Db, key: Option<&[u8]>) -> Result<AdminState, Error> {
        let key = match key {
            Some(bytes) if bytes.len() >= 64 => Key::from(bytes),
            Some(_) => {
                return Err(Error::Config(
                    "the session key must be at least 64 bytes".into(),
                ));
            }
            None => Key::generate(),
        };
        Ok(AdminState(Arc::new(Inner { db, key })))
    }

    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    pub(crate) fn templates(&self) -> &'static Environment<'static> {
        templates()
    }
}

/// The site's templates, parsed once per process.
pub(crate) fn templates() -> &'static Environment<'static> {
    static TEMPLATES: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    TEMPLATES.get_or_init(parse_templates)
}

fn parse_templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("list.html", include_str!("templates/list.html")),
        ("user_add.html", include_str!("templates/user_add.html")),
        (
            "profile_change.html",
            include_str!("templates/profile_change.html"),
        ),
        ("delete.html", include_str!("templates/delete.html")),
        ("message.html", include_str!("templates/message.html")),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env
}

/// The admin site's routes, under `/admin/`, and the uploaded photos under `/media/`.
pub fn router(state: AdminState) -> Router {
    // Room for a file up to twice the upload limit, so that one too large is refused beside
    // its field (as `set-photo` refuses it) rather than by the server with a bare 413.
    let upload_limit = crate::media::max_upload_size()
        .saturating_mul(2)
        .saturating_add(1 << 20);
    Router::new()
        .route("/", get(views::home))
        .route("/admin/", get(views::home))
        .route("/admin/login/", get(views::login_form).post(views::login))
        .route("/admin/logout/", post(views::logout))
        .route("/admin/account/profile/", get(views::list))
        .route(
            "/admin/account/user/add/",
            get(views::add_form).post(views::add),
        )
        .route(
            "/admin/account/profile/{id}/change/",
            get(views::change_form).post(views::change),
        )
        .route(
            "/admin/account/user/{id}/delete/",
            get(views::delete_form).post(views::delete),
        )
        .nest_service("/media", ServeDir::new(crate::media::media_root()))
        .layer(DefaultBodyLimit::max(
            usize::try_from(upload_limit).unwrap_or(usize::MAX),
        ))
        .with_state(state)
}

/// Serves the admin site on `bind` until the process is stopped; prints where.
pub async fn serve(db: Db, bind: &str) -> Result<(), Error> {
    let addr: SocketAddr = bind
        .parse()
        .map_err(|_| Error::Config(format!("`{bind}` is not an address, as in 127.0.0.1:8000")))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    let key = std::env::var("SECRET_KEY").ok();
    let state = AdminState::new(db, key.as_deref().map(str::as_bytes))?;
    println!("admin site at http://{addr}/admin/ (stop with Ctrl-C)");
    axum::serve(listener, router(state))
        .await
        .map_err(|e| Error::Config(format!("the server stopped: {e}")))
}
