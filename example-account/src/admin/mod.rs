//! `serve`: the seed's Django admin for `Profile` (`list_display = ['user', 'date_of_birth',
//! 'photo']`) as a web site on the same models, receivers and database as the CLI.
//!
//! - Staff users log in with their Argon2id password (every attempt hashed, queued, and slowed
//!   down after repeated failures: `guard`); the session is a row of `AdminSession` keyed by an
//!   encrypted, signed cookie (`HttpOnly`, `SameSite=Strict`, `axum-extra`'s private jar) that
//!   ends at logout, after two weeks, and when its user changes (`session`); every form carries
//!   the session's CSRF token, checked before anything is done.
//! - Every response carries the headers a production admin needs (see [`router`]), and
//!   [`serve`] closes connections that do not send their headers in time.
//! - The profile list searches by username, orders by each column and shows 25 a page.
//! - Users are added through `User::create_user` (their profile comes from `create_profile`),
//!   profiles changed through `set_dob`/`set_photo`, users deleted through `delete_user` after
//!   a confirmation page listing what the cascade deletes.
//! - Templates are minijinja's, auto-escaping every value; form errors show beside the field.

mod error;
mod extract;
mod guard;
pub mod list;
mod session;
mod views;

pub use session::SESSION_AGE;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use axum_extra::extract::cookie::Key;
use minijinja::Environment;
use signals_core::Db;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::Error;

/// What every request of the admin site shares.
#[derive(Clone)]
pub struct AdminState(Arc<Inner>);

struct Inner {
    db: Db,
    key: Key,
    throttle: guard::Throttle,
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
        Ok(AdminState(Arc::new(Inner {
            db,
            key,
            throttle: guard::Throttle::default(),
        })))
    }

    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    pub(crate) fn throttle(&self) -> &guard::Throttle {
        &self.0.throttle
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

/// The Content-Security-Policy of every page: nothing but the site's own stylesheet, images
/// and forms; no script, no frame, no plugin.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// How long a client may take to send a request's headers before the connection is closed
/// (so idle half-sent requests cannot hold connections open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request may take, its body included, before it is answered `408 Request
/// Timeout` (so a body sent slowly, or never finished, cannot hold a connection open).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections served at once; more wait in the listener's backlog.
pub const MAX_CONNECTIONS: usize = 4096;

/// Connections served at once from one client address; more are closed at once.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;

/// The admin site's routes, under `/admin/`, and the uploaded photos under `/media/`.
///
/// Every response carries `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`,
/// `Referrer-Policy: same-origin` and a Content-Security-Policy allowing only the site's own
/// stylesheet, images and forms; pages other than the photos also `Cache-Control: no-store`.
pub fn router(state: AdminState) -> Router {
    // Room for a file up to twice the upload limit, so that one too large is refused beside
    // its field (as `set-photo` refuses it) rather than by the server with a bare 413.
    let upload_limit = crate::media::max_upload_size()
        .saturating_mul(2)
        .saturating_add(1 << 20);
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    Router::new()
        .route("/", get(views::home))
        .route("/admin/", get(views::home))
        .route("/admin/static/admin.css", get(stylesheet))
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
        .layer(header(header::CACHE_CONTROL, "no-store"))
        .nest_service("/media", ServeDir::new(crate::media::media_root()))
        .layer(DefaultBodyLimit::max(
            usize::try_from(upload_limit).unwrap_or(usize::MAX),
        ))
        // Inside the headers' layers: a `408` carries them too.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::REFERRER_POLICY, "same-origin"))
        .layer(header(header::CONTENT_SECURITY_POLICY, CSP))
        .with_state(state)
}

async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("templates/admin.css"),
    )
}

/// Serves the admin site on `bind` until the process is stopped; prints where.
///
/// HTTP/1 through hyper, with a [`HEADER_READ_TIMEOUT`] (which `axum::serve` does not set)
/// and a [`REQUEST_TIMEOUT`], at most [`MAX_CONNECTIONS`] connections at once and
/// [`MAX_CONNECTIONS_PER_ADDRESS`] from one address, each request knowing its client's
/// address (for the login throttle).
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
    serve_on(listener, state).await
}

/// Serves the admin site on connections `listener` accepts, until the process is stopped:
/// [`serve`] without its setup, for a listener of your own (a test's on port 0, say).
pub async fn serve_on(listener: tokio::net::TcpListener, state: AdminState) -> Result<(), Error> {
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_address: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return Err(Error::Config("the server's connection slots closed".into()));
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, say: wait a moment rather than spin.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(held) = AddressSlot::take(&per_address, peer.ip()) else {
            tracing::warn!(%peer, "too many connections from one address; closed");
            continue;
        };
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        tokio::spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(app);
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!(error = %err, %peer, "connection ended");
            }
            drop((held, slot));
        });
    }
}

/// One connection counted against its client address, given back when dropped.
struct AddressSlot {
    counts: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    addr: IpAddr,
}

impl AddressSlot {
    /// Counts a connection from `addr`, unless it has [`MAX_CONNECTIONS_PER_ADDRESS`] already.
    fn take(counts: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>, addr: IpAddr) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(addr).or_default();
        if *n >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: Arc::clone(counts),
            addr,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}
