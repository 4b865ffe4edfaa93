//! Sessions and CSRF: the session is one private cookie (encrypted and signed by
//! `axum-extra`, `HttpOnly`, `SameSite=Strict`) holding the staff user's id and the session's
//! CSRF token; before login it holds the token alone. Every form posts the token back, and a
//! request whose token does not match the cookie's is refused before anything is done.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::PrivateCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::AdminState;
use super::error::AdminError;
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

    /// Whether `token` (from a form) is this session's, compared in constant time.
    pub(crate) fn token_matches(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        self.csrf.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

/// A request from a logged-in, active staff user, with the session's CSRF token. Anyone
/// else is sent to the login page; a database that cannot tell is a server error, never a
/// login page.
pub(crate) struct Staff {
    pub(crate) user: User,
    pub(crate) session: Session,
}

impl FromRequestParts<AdminState> for Staff {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let jar = PrivateCookieJar::from_request_parts(parts, state)
            .await
            .map_err(|_| AdminError::Login)?;
        let session = Session::read(&jar).ok_or(AdminError::Login)?;
        let id = session.user_id.ok_or(AdminError::Login)?;
        let user = <User as signals_core::Model>::get(state.db(), id)
            .await?
            .filter(|u| u.is_active && u.is_staff)
            .ok_or(AdminError::Login)?;
        Ok(Staff { user, session })
    }
}
