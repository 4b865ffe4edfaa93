//! The admin's one error type: every handler returns `Result<_, AdminError>` and uses `?`;
//! the error is the page a visitor sees (a redirect to the login page, a refused form, a
//! missing row, a server error whose details go to the log, never to the page).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;

use crate::Error;

/// Why a request of the admin ends in something other than its page.
#[derive(Debug)]
pub(crate) enum AdminError {
    /// No staff session: the login page.
    Login,
    /// A POST whose CSRF token is missing or another session's: refused, nothing done.
    Csrf,
    /// No row with the key in the URL.
    NotFound(&'static str),
    /// A request the site cannot read (a malformed form).
    BadRequest(String),
    /// The application or its database failed: a 500 page; the cause goes to the log.
    Server(Error),
    /// A page could not be rendered.
    Render(minijinja::Error),
}

impl From<Error> for AdminError {
    fn from(err: Error) -> Self {
        AdminError::Server(err)
    }
}

impl From<signals_core::Error> for AdminError {
    fn from(err: signals_core::Error) -> Self {
        AdminError::Server(err.into())
    }
}

impl From<minijinja::Error> for AdminError {
    fn from(err: minijinja::Error) -> Self {
        AdminError::Render(err)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Login => Redirect::to("/admin/login/").into_response(),
            AdminError::Csrf => message(
                StatusCode::FORBIDDEN,
                "Forbidden (403)",
                "CSRF verification failed: the form did not carry this session's token. Reload \
                 the page and submit it again.",
            ),
            AdminError::NotFound(what) => message(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("no {what} with that key"),
            ),
            AdminError::BadRequest(why) => message(
                StatusCode::BAD_REQUEST,
                "Bad request",
                &format!("the form could not be read: {why}"),
            ),
            AdminError::Server(err) => {
                tracing::error!(error = %err, "admin request failed");
                server_error()
            }
            AdminError::Render(err) => {
                tracing::error!(error = %err, "an admin page could not be rendered");
                server_error()
            }
        }
    }
}

/// The page of a failure on the server's side: what happened is in the log, not on the page.
fn server_error() -> Response {
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Server error",
        "Something went wrong on the server; it has been logged. Try again later.",
    )
}

/// A page that only says something, with its status.
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let html = super::templates()
        .get_template("message.html")
        .and_then(|t| t.render(context! { title, text }))
        .unwrap_or_else(|_| "error".to_owned());
    (status, Html(html)).into_response()
}
