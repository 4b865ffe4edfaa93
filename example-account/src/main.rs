//! The seed's Django `account` app on signals-core: a `Profile` for every `User`, made by a
//! `post_save` receiver in the same transaction as the user's INSERT.
//!
//! ```text
//! cargo run -p example-account                                   # SQLite file account.db
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p example-account
//! DATABASE_URL=mysql://root@127.0.0.1:3306/test cargo run -p example-account
//! ```
//!
//! Running it again is fine: it finds `johndoe` instead of creating a duplicate.

use std::fmt;
use std::process::ExitCode;

use chrono::NaiveDate;
use signals_core::{Backend, Db, Model, PostSave, Result};

/// Django's `auth.User`, reduced to what the seed uses.
#[derive(Debug, Clone, Model)]
#[model(table = "account_user")]
#[post_save(create_profile, save_profile)]
pub struct User {
    /// Assigned by the database on the first save.
    pub id: Option<i64>,
    /// Unique login name.
    pub username: String,
    /// Contact address.
    pub email: String,
}

/// The seed's `Profile`: one-to-one with `User`, deleted with it.
#[derive(Debug, Clone, Model)]
#[model(table = "account_profile")]
pub struct Profile {
    /// Assigned by the database on the first save.
    pub id: Option<i64>,
    /// The user this profile belongs to; deleting the user deletes the profile.
    #[model(one_to_one = User, on_delete = cascade)]
    pub user_id: i64,
    /// Unknown until the user tells.
    pub date_of_birth: Option<NaiveDate>,
    /// Relative path of the uploaded photo, "" when none.
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

/// `create_profile` from the seed: a new user gets a profile.
async fn create_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    if signal.created() {
        let user_id = user.id.expect("a saved user has an id");
        Profile::blank(user_id).save(signal.tx()).await?;
        println!(
            "  post_save → create_profile: created the profile of {}",
            user.username
        );
    }
    Ok(())
}

/// `save_profile` from the seed, without its pitfall: Django's `instance.profile.save()`
/// raises for a user that has no profile (one created before the app existed); this gives
/// that user a profile instead.
async fn save_profile(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    match Profile::for_user(signal.tx(), user).await? {
        Some(mut profile) => {
            profile.save(signal.tx()).await?;
            println!(
                "  post_save → save_profile: saved the profile of {}",
                user.username
            );
        }
        None => {
            let user_id = user.id.expect("a saved user has an id");
            Profile::blank(user_id).save(signal.tx()).await?;
            println!(
                "  post_save → save_profile: {} had no profile; made one",
                user.username
            );
        }
    }
    Ok(())
}

/// The seed's `__str__`.
struct ProfileOf<'a>(&'a str);

impl fmt::Display for ProfileOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Profile of {}", self.0)
    }
}

fn schema(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "CREATE TABLE IF NOT EXISTS account_user (
                id BIGSERIAL PRIMARY KEY,
                username TEXT NOT NULL UNIQUE,
                email TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS account_profile (
                id BIGSERIAL PRIMARY KEY,
                user_id BIGINT NOT NULL UNIQUE REFERENCES account_user (id),
                date_of_birth DATE,
                photo TEXT NOT NULL)"
        }
        Backend::MySql => {
            "CREATE TABLE IF NOT EXISTS account_user (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                username VARCHAR(150) NOT NULL UNIQUE,
                email VARCHAR(254) NOT NULL);
             CREATE TABLE IF NOT EXISTS account_profile (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                user_id BIGINT NOT NULL UNIQUE,
                date_of_birth DATE,
                photo VARCHAR(255) NOT NULL,
                FOREIGN KEY (user_id) REFERENCES account_user (id))"
        }
        _ => {
            "CREATE TABLE IF NOT EXISTS account_user (
                id INTEGER PRIMARY KEY,
                username TEXT NOT NULL UNIQUE,
                email TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS account_profile (
                id INTEGER PRIMARY KEY,
                user_id INTEGER NOT NULL UNIQUE REFERENCES account_user (id),
                date_of_birth DATE,
                photo TEXT NOT NULL)"
        }
    }
}

async fn run(url: &str) -> Result<()> {
    let db = Db::connect(url).await?;
    println!("database: {url} ({})", db.backend());
    for statement in schema(db.backend()).split(';') {
        db.execute_unprepared(statement).await?;
    }

    let mut user = match User::filter(&db, User::USERNAME, "johndoe").await?.pop() {
        Some(user) => {
            println!(
                "johndoe exists (id {}); saving it again:",
                user.id.unwrap_or_default()
            );
            user
        }
        None => {
            println!("creating johndoe:");
            User {
                id: None,
                username: "johndoe".into(),
                email: "john@example.com".into(),
            }
        }
    };
    let saved = user.save(&db).await?;
    println!(
        "saved johndoe (id {}, {})",
        user.id.unwrap_or_default(),
        if saved.created() { "INSERT" } else { "UPDATE" }
    );

    // Django's `user.profile`.
    let mut profile = Profile::for_user(&db, &user)
        .await?
        .expect("the receivers give every user a profile");
    println!("{}", ProfileOf(&user.username));

    profile.date_of_birth = NaiveDate::from_ymd_opt(1990, 5, 17);
    profile.save(&db).await?;
    println!("date of birth set to 1990-05-17");

    println!("profiles:");
    for profile in Profile::all(&db).await? {
        let owner = profile.user(&db).await?;
        let name = owner.map(|u| u.username).unwrap_or_default();
        let dob = profile
            .date_of_birth
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        let photo = if profile.photo.is_empty() {
            "(no photo)"
        } else {
            profile.photo.as_str()
        };
        println!("  {name:<12} {dob:<10}  {photo}");
    }
    db.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://account.db".into());
    match run(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
