//! The checks every request needs, as extractors, so that no handler can forget them: the
//! staff session ([`Staff`](super::session::Staff), in `session`), and the CSRF token of
//! every form ([`CsrfForm`] for URL-encoded forms, [`CsrfMultipart`] for forms with files),
//! checked against the session's before the handler runs.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use axum::Form;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum_extra::extract::PrivateCookieJar;
use serde::de::DeserializeOwned;

use super::AdminState;
use super::error::AdminError;
use super::session::Session;

/// A form that carries the session's CSRF token.
pub(crate) trait Tokened {
    /// The token the form posted (empty when it posted none).
    fn csrf_token(&self) -> &str;
}

/// A form read from a `multipart/form-data` body (one with files).
pub(crate) trait MultipartForm: Sized {
    /// Reads the whole form; `Err` says why it cannot be read.
    fn read(multipart: Multipart) -> impl Future<Output = Result<Self, String>> + Send;
}

/// A URL-encoded form whose CSRF token is this session's: otherwise the request is refused
/// ([`AdminError::Csrf`]) before the handler runs.
pub(crate) struct CsrfForm<T>(pub(crate) T);

/// A multipart form whose CSRF token is this session's (read with the whole form first, as
/// the token is one of its fields).
pub(crate) struct CsrfMultipart<T>(pub(crate) T);

/// The session of the request's cookie; a request without one carries no token to match.
async fn session(parts: &mut Parts, state: &AdminState) -> Result<Session, AdminError> {
    let jar =
        PrivateCookieJar::<axum_extra::extract::cookie::Key>::from_request_parts(parts, state)
            .await
            .map_err(|_| AdminError::Csrf)?;
    Session::read(&jar).ok_or(AdminError::Csrf)
}

/// `form` when its token is `session`'s.
fn checked<T: Tokened>(session: &Session, form: T) -> Result<T, AdminError> {
    if session.token_matches(form.csrf_token()) {
        Ok(form)
    } else {
        Err(AdminError::Csrf)
    }
}

impl<T> FromRequest<AdminState> for CsrfForm<T>
where
    T: DeserializeOwned + Tokened + Send,
{
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &AdminState) -> Result<Self, AdminError> {
        let (mut parts, body) = req.into_parts();
        let session = session(&mut parts, state).await;
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        // No database stores NUL in text alike (PostgreSQL refuses it): a form with one is
        // refused here, the same on every backend, before any handler sees it.
        if form_urlencoded::parse(&bytes).any(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(AdminError::BadRequest(
                "a field holds a NUL character".into(),
            ));
        }
        let body = axum::body::Body::from(bytes);
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        checked(&session?, form).map(CsrfForm)
    }
}

/// The client's address, when the server knows it (the connection's peer; none in a test
/// that sends requests without a connection). Behind a reverse proxy this is the proxy's.
pub(crate) struct ClientAddr(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

impl<T> FromRequest<AdminState> for CsrfMultipart<T>
where
    T: MultipartForm + Tokened + Send,
{
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &AdminState) -> Result<Self, AdminError> {
        let (mut parts, body) = req.into_parts();
        let session = session(&mut parts, state).await?;
        let multipart = Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        let form = T::read(multipart).await.map_err(AdminError::BadRequest)?;
        checked(&session, form).map(CsrfMultipart)
    }
}
