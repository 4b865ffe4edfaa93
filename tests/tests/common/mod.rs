//! The seed's models, with receivers that record what they see, shared by the test files.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use signals_core::{
    BoxError, ConnRef, ErrorKind, Model, PostDelete, PostSave, PreDelete, PreSave, Result, Tx,
};
use signals_tests::record;

pub const SCHEMA: &str = "
CREATE TABLE account_user (
    id {pk},
    username {varchar} NOT NULL,
    email {varchar} NOT NULL,
    CONSTRAINT account_user_username_key UNIQUE (username)
);
CREATE TABLE account_profile (
    id {pk},
    user_id {bigint} NOT NULL,
    date_of_birth {date},
    photo {varchar} NOT NULL,
    CONSTRAINT account_profile_user_id_key UNIQUE (user_id),
    CONSTRAINT account_profile_user_fk FOREIGN KEY (user_id) REFERENCES account_user (id)
)";

/// Emails that make a receiver fail, to test rollbacks.
pub const FAIL_PRE_SAVE: &str = "fail@pre_save";
pub const FAIL_POST_SAVE: &str = "fail@post_save";
pub const FAIL_PRE_DELETE: &str = "fail@pre_delete";
pub const FAIL_POST_DELETE: &str = "fail@post_delete";
/// Emails that make `save_profile` misbehave after the profile was written, to test faults.
pub const SLEEP_POST_SAVE: &str = "sleep@post_save";
pub const PANIC_POST_SAVE: &str = "panic@post_save";
pub const KILL_POST_SAVE: &str = "kill@post_save";

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "account_user")]
#[pre_save(normalize_username)]
#[post_save(create_profile, save_profile)]
#[pre_delete(user_pre_delete)]
#[post_delete(user_post_delete)]
pub struct User {
    pub id: Option<i64>,
    pub username: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "account_profile")]
#[pre_save(profile_pre_save)]
#[post_save(profile_post_save)]
#[pre_delete(profile_pre_delete)]
#[post_delete(profile_post_delete)]
pub struct Profile {
    pub id: Option<i64>,
    #[model(one_to_one = User, on_delete = cascade)]
    pub user_id: i64,
    pub date_of_birth: Option<chrono::NaiveDate>,
    pub photo: String,
}

impl Profile {
    /// A profile with nothing filled in yet, for the user with key `user_id`.
    pub fn blank(user_id: i64) -> Profile {
        Profile {
            id: None,
            user_id,
            date_of_birth: None,
            photo: String::new(),
        }
    }
}

impl User {
    pub fn new(username: &str) -> User {
        User {
            id: None,
            username: username.into(),
            email: format!("{username}@example.com"),
        }
    }
}

/// A pre_save receiver that changes the instance before the write.
async fn normalize_username(user: &mut User, signal: &mut PreSave<'_>) -> Result<()> {
    record(format!("pre_save User adding={}", signal.adding()));
    user.username = user.username.trim().to_lowercase();
    if user.email == FAIL_PRE_SAVE {
        return Err(BoxError::from("pre_save refused").into());
    }
    Ok(())
}

async fn create_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    record(format!("create_profile created={}", signal.created()));
    if signal.created() {
        let user_id = user.id.expect("a saved user has an id");
        Profile::blank(user_id).save(signal.tx()).await?;
    }
    Ok(())
}

/// The seed's `save_profile`, written so that a user without a profile gets one.
async fn save_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    record(format!("save_profile created={}", signal.created()));
    match Profile::for_user(signal.tx(), user).await? {
        Some(mut profile) => {
            profile.save(signal.tx()).await?;
        }
        None => {
            let user_id = user.id.expect("a saved user has an id");
            // Concurrent saves of a user without a profile race to create it; the unique
            // constraint lets one win, the savepoint keeps the loser's transaction usable.
            let created = signal
                .tx()
                .savepoint(async |tx: &mut Tx| Profile::blank(user_id).save(tx).await)
                .await;
            match created {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::UniqueViolation => {}
                Err(err) => return Err(err),
            }
        }
    }
    match user.email.as_str() {
        FAIL_POST_SAVE => return Err(BoxError::from("post_save refused").into()),
        SLEEP_POST_SAVE => tokio::time::sleep(std::time::Duration::from_secs(60)).await,
        PANIC_POST_SAVE => panic!("save_profile panicked on purpose"),
        KILL_POST_SAVE => {
            kill_own_connection(signal.tx()).await?;
            // The next statement finds the connection gone.
            Profile::for_user(signal.tx(), user).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Terminates the transaction's own server connection from a second connection, as an
/// operator or a failover would.
async fn kill_own_connection(tx: &mut Tx) -> Result<()> {
    use signals_core::sqlx::{self, Connection as _};
    let admin_url = signals_tests::server_url(tx.backend());
    match tx.conn().await? {
        ConnRef::Postgres(conn) => {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await?;
            let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(&mut admin)
                .await?;
        }
        ConnRef::MySql(conn) => {
            let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
                .fetch_one(&mut *conn)
                .await?;
            let mut admin = sqlx::MySqlConnection::connect(&admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("KILL {id}")))
                .execute(&mut admin)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn user_pre_delete(user: &User, signal: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre_delete User origin={}", signal.origin()));
    if user.email == FAIL_PRE_DELETE {
        return Err(BoxError::from("pre_delete refused").into());
    }
    Ok(())
}

async fn user_post_delete(user: &User, signal: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post_delete User origin={}", signal.origin()));
    if user.email == FAIL_POST_DELETE {
        return Err(BoxError::from("post_delete refused").into());
    }
    Ok(())
}

async fn profile_pre_save(_: &mut Profile, signal: &mut PreSave<'_>) -> Result<()> {
    record(format!("pre_save Profile adding={}", signal.adding()));
    Ok(())
}

async fn profile_post_save(_: &Profile, signal: &mut PostSave<'_>) -> Result<()> {
    record(format!("post_save Profile created={}", signal.created()));
    Ok(())
}

async fn profile_pre_delete(_: &Profile, signal: &mut PreDelete<'_>) -> Result<()> {
    record(format!("pre_delete Profile origin={}", signal.origin()));
    Ok(())
}

async fn profile_post_delete(_: &Profile, signal: &mut PostDelete<'_>) -> Result<()> {
    record(format!("post_delete Profile origin={}", signal.origin()));
    Ok(())
}

pub async fn setup(db: &signals_core::Db) {
    signals_tests::create_tables(db, SCHEMA).await;
}
