//! Sessions and CSRF. The browser holds one private cookie (encrypted and signed by
//! `axum-extra`, `HttpOnly`, `SameSite=Strict`) with the session's CSRF token and, once logged
//! in, the key of its [`AdminSession`] row, which says whose session it is and until when
//! (two weeks, Django's default). Every form posts the token back, and a request whose token
//! does not match the cookie's is refused before anything is done.
//!
//! A session ends at logout (the row is deleted, so a copy of the cookie opens nothing), when
//! it expires, when its user is deleted (the reference's cascade deletes the row: a new user
//! given the same id is not logged in), when the user's password changes (the row keeps a
//! fingerprint of the hash it began with), and when the user is no longer active or staff.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::PrivateCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Utc;
use signals_core::Model as _;

use super::AdminState;
use super::error::AdminError;
use crate::{AdminSession, User};

const COOKIE: &str = "admin_session";

/// How long a session lasts (Django's `SESSION_COOKIE_AGE`).
pub const SESSION_AGE: chrono::TimeDelta = chrono::TimeDelta::weeks(2);

/// What the session cookie holds.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The key of the logged-in session's row, if any.
    pub(crate) key: Option<String>,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
}

/// 64 random hexadecimal digits.
fn random_key() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// What a session is bound to: SHA-256 of the user's password hash.
pub(crate) fn fingerprint(password_hash: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(password_hash.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Session {
    /// A session before login, with a fresh token.
    pub(crate) fn anonymous() -> Session {
        Session {
            key: None,
            csrf: random_key(),
        }
    }

    /// Logs `user` in: a new session row, and a new key and token (never the ones from
    /// before the login). Expired rows of every user are removed on the way.
    pub(crate) async fn begin(state: &AdminState, user: &User) -> Result<Session, AdminError> {
        let db = state.db();
        let now = Utc::now();
        AdminSession::query()
            .filter(AdminSession::EXPIRES_AT.lt(now))
            .delete(db)
            .await?;
        let mut row = AdminSession {
            id: None,
            key: random_key(),
            user_id: user.id.ok_or(AdminError::Login)?,
            password_fingerprint: fingerprint(&user.password),
            expires_at: now + SESSION_AGE,
        };
        row.save(db).await?;
        Ok(Session {
            key: Some(row.key),
            csrf: random_key(),
        })
    }

    /// Ends the logged-in session, if any: its row is deleted.
    pub(crate) async fn end(&self, state: &AdminState) -> Result<(), AdminError> {
        if let Some(key) = &self.key {
            AdminSession::query()
                .filter(AdminSession::KEY.eq(key.clone()))
                .delete(state.db())
                .await?;
        }
        Ok(())
    }

    /// The session in `jar`, if its cookie is there and authentic.
    pub(crate) fn read(jar: &PrivateCookieJar) -> Option<Session> {
        let cookie = jar.get(COOKIE)?;
        let (key, csrf) = cookie.value().split_once(':')?;
        Some(Session {
            key: (!key.is_empty()).then(|| key.to_owned()),
            csrf: csrf.to_owned(),
        })
    }

    /// `jar` with this session stored; a logged-in session's cookie expires with it.
    pub(crate) fn store(&self, jar: PrivateCookieJar) -> PrivateCookieJar {
        let key = self.key.as_deref().unwrap_or_default();
        let mut cookie = Cookie::build((COOKIE, format!("{key}:{}", self.csrf)))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict);
        if self.key.is_some() {
            let age = SESSION_AGE.num_seconds();
            cookie = cookie.max_age(time::Duration::seconds(age));
        }
        jar.add(cookie.build())
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
        let key = session.key.clone().ok_or(AdminError::Login)?;
        let db = state.db();
        let row = AdminSession::query()
            .filter(AdminSession::KEY.eq(key))
            .first(db)
            .await?
            .ok_or(AdminError::Login)?;
        let user = match User::get(db, row.user_id).await? {
            Some(user)
                if row.expires_at > Utc::now()
                    && user.is_active
                    && user.is_staff
                    && row.password_fingerprint == fingerprint(&user.password) =>
            {
                user
            }
            // Expired, or the user changed: the session ends here.
            _ => {
                session.end(state).await?;
                return Err(AdminError::Login);
            }
        };
        Ok(Staff { user, session })
    }
}
