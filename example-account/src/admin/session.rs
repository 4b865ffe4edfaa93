//! Sessions and CSRF: the session is one private cookie (encrypted and signed by
//! `axum-extra`, `HttpOnly`, `SameSite=Strict`) holding the staff user's id and the session's
//! CSRF token; before login it holds the token alone. Every form posts the token back, and a
//! request whose token does not match the cookie's is refused before anything is done.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::PrivateCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::AdminState;
use crate::User;

const COOKIE: &str = "admin_session";

/// What the session cookie holds.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The staff user logged in, if any.
    pub(crate) user_id: Option<i64>,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
}

impl Session {
    /// A new session for `user_id` (or none), with a fresh token.
    pub(crate) fn new(user_id: Option<i64>) -> Session {
        Session {
            user_id,
            csrf: format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        }
    }

    /// The session in `jar`, if its cookie is there and authentic.
    pub(crate) fn read(jar: &PrivateCookieJar) -> Option<Session> {
        let cookie = jar.get(COOKIE)?;
        let (user, csrf) = cookie.value().split_once(':')?;
        Some(Session {
            user_id: user.parse().ok(),
            csrf: csrf.to_owned(),
        })
    }

    /// `jar` with this session stored.
    pub(crate) fn store(&self, jar: PrivateCookieJar) -> PrivateCookieJar {
        let user = self.user_id.map(|id| id.to_string()).unwrap_or_default();
        let cookie = Cookie::build((COOKIE, format!("{user}:{}", self.csrf)))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .build();
        jar.add(cookie)
    }

    /// `jar` without a session.
    pub(crate) fn clear(jar: PrivateCookieJar) -> PrivateCookieJar {
        jar.remove(Cookie::build(COOKIE).path("/"))
    }

    /// Whether `token` (from a form) is this session's.
    pub(crate) fn token_matches(&self, token: &str) -> bool {
        // Same length, every byte compared: no early exit that times the match.
        self.csrf.len() == token.len()
            && self
                .csrf
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// A request from a logged-in, active staff user, with the session's CSRF token. Anyone
/// else is sent to the login page.
pub(crate) struct Staff {
    pub(crate) user: User,
    pub(crate) session: Session,
}

impl FromRequestParts<AdminState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/admin/login/").into_response();
        let jar = PrivateCookieJar::from_request_parts(parts, state)
            .await
            .map_err(|_| to_login())?;
        let session = Session::read(&jar).ok_or_else(to_login)?;
        let id = session.user_id.ok_or_else(to_login)?;
        let user = <User as signals_core::Model>::get(state.db(), id)
            .await
            .ok()
            .flatten()
            .filter(|u| u.is_active && u.is_staff)
            .ok_or_else(to_login)?;
        Ok(Staff { user, session })
    }
}
