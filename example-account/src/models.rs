//! The seed's models and receivers.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use signals_core::durable::Delivery;
use signals_core::{
    Committed, Db, ErrorKind, Executor, Model, PostDelete, PostSave, PostSaveBatch, Result, Tx,
};

use crate::{media, password};

/// Django's `auth.User`, with what the seed's app uses.
///
/// Serialisable for its durable receiver (`send_welcome`): the outbox keeps the instance as
/// JSON, without the password hash, which stays in the user table.
#[derive(Debug, Clone, PartialEq, Model, serde::Serialize, serde::Deserialize)]
#[model(table = "account_user")]
#[post_save(create_profile, save_profile, batch)]
#[post_save(email_changed, changed(email))]
#[on_commit(send_welcome, durable)]
pub struct User {
    /// Assigned by the database on the first save.
    pub id: Option<i64>,
    /// Unique login name.
    #[model(unique, max_length = 150)]
    pub username: String,
    /// Contact address ("" when none).
    #[model(max_length = 254, default = "")]
    pub email: String,
    /// The Argon2id hash of the password, never the password itself.
    #[model(max_length = 255)]
    #[serde(skip)]
    pub password: String,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
    /// Whether the user may log in.
    #[model(default = true)]
    pub is_active: bool,
    /// Whether the user may log in to the admin site (Django's `is_staff`).
    #[model(default = false)]
    pub is_staff: bool,
}

/// The seed's `Profile`: one per user, deleted with the user.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "account_profile")]
#[post_delete(remove_photo)]
pub struct Profile {
    /// Assigned by the database on the first save.
    pub id: Option<i64>,
    /// The user this profile belongs to.
    #[model(one_to_one = User, on_delete = cascade)]
    pub user_id: i64,
    /// Unknown until the user tells. Indexed: the admin's list orders by it.
    #[model(index)]
    pub date_of_birth: Option<NaiveDate>,
    /// The photo's path under the media root (`users/%Y/%m/%d/<name>`), "" when none.
    #[model(max_length = 255, default = "")]
    pub photo: String,
}

/// The welcome note a new user gets from the durable receiver `send_welcome` (the app has no
/// mail server: `example-account notes` shows them).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "account_welcomenote")]
pub struct WelcomeNote {
    /// Assigned by the database.
    pub id: Option<i64>,
    /// The user welcomed (no reference: the note outlives a deleted user, as a sent mail does).
    pub user_id: i64,
    /// The user's name when welcomed.
    #[model(max_length = 150)]
    pub username: String,
    /// The note.
    #[model(max_length = 255)]
    pub body: String,
    /// The outbox event that wrote it.
    #[model(unique, max_length = 36)]
    pub event_id: String,
}

/// A logged-in session of the admin site (Django's `django_session`, for logins only). The
/// browser's cookie carries the random `key`; the row says whose session it is and until when.
/// A session ends at logout (its row is deleted), when it expires, when its user is deleted
/// (the reference's cascade), and when the user's password changes (`password_fingerprint`
/// no longer matches, as Django keys sessions to the password hash); a user no longer active
/// or staff is refused and the row deleted.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "admin_session")]
pub struct AdminSession {
    /// Assigned by the database.
    pub id: Option<i64>,
    /// The cookie's secret: 64 random hexadecimal digits.
    #[model(unique, max_length = 64)]
    pub key: String,
    /// The staff user logged in.
    #[model(foreign_key = User, on_delete = cascade)]
    pub user_id: i64,
    /// SHA-256 of the user's password hash when the session began.
    #[model(max_length = 64)]
    pub password_fingerprint: String,
    /// When the session ends, if nothing ends it before.
    pub expires_at: DateTime<Utc>,
}

/// Welcomes a new user, durably: the event is written with the user's own transaction and
/// handled by a runner (in-process, or a worker behind NATS), which writes the note in the
/// same transaction as its inbox record, so each user gets exactly one.
async fn send_welcome(user: User, delivery: &mut Delivery<'_>) -> Result<()> {
    if delivery.committed() != (Committed::Saved { created: true }) {
        return Ok(());
    }
    let mut note = WelcomeNote {
        id: None,
        user_id: user.id.unwrap_or_default(),
        body: format!(
            "Welcome, {}! Your account and profile are ready.",
            user.username
        ),
        username: user.username,
        event_id: delivery.event().id.clone(),
    };
    note.save(delivery.tx()).await?;
    Ok(())
}

impl User {
    /// Creates and saves an active user with a hashed password (Django's
    /// `User.objects.create_user`); the receivers give it a profile in the same transaction.
    pub async fn create_user<'e>(
        ex: impl Executor<'e>,
        username: &str,
        email: &str,
        password: &str,
    ) -> std::result::Result<User, crate::Error> {
        User::create(ex, username, email, password, false).await
    }

    /// [`create_user`](Self::create_user) for a user who may log in to the admin site
    /// (`is_staff`), as Django's `createsuperuser` makes one.
    pub async fn create_staff_user<'e>(
        ex: impl Executor<'e>,
        username: &str,
        email: &str,
        password: &str,
    ) -> std::result::Result<User, crate::Error> {
        User::create(ex, username, email, password, true).await
    }

    async fn create<'e>(
        ex: impl Executor<'e>,
        username: &str,
        email: &str,
        password: &str,
        is_staff: bool,
    ) -> std::result::Result<User, crate::Error> {
        crate::validate_username(username)?;
        crate::validate_email(email)?;
        let mut user = User {
            id: None,
            username: username.to_owned(),
            email: email.to_owned(),
            password: password::hash_queued(password).await?,
            date_joined: Utc::now(),
            is_active: true,
            is_staff,
        };
        user.save(ex)
            .await
            .map_err(|e| crate::Error::from_save(e, username))?;
        Ok(user)
    }

    /// Whether `password` is this user's password.
    pub fn check_password(&self, password: &str) -> bool {
        password::verify(password, &self.password)
    }

    /// The user named `username`, if any.
    pub async fn by_username<'e>(ex: impl Executor<'e>, username: &str) -> Result<Option<User>> {
        Ok(User::filter(ex, User::USERNAME, username).await?.pop())
    }
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

/// A changed address gets a note once the change commits (sent nowhere else: the app has no
/// mail server), telling the old address from the new. Runs only when `email` changed.
async fn email_changed(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
    if signal.created() || signal.raw() {
        return Ok(());
    }
    let shown = |email: &str| {
        if email.is_empty() {
            "(none)".to_owned()
        } else {
            email.to_owned()
        }
    };
    let old = shown(signal.was(User::EMAIL).map_or("", String::as_str));
    let new = shown(&user.email);
    let username = user.username.clone();
    signal.on_commit(async move {
        println!("note to {username}: your email changed from {old} to {new}");
    });
    Ok(())
}

/// The seed's `create_profile`: a new user gets a profile. Batched: a bulk save of users
/// (`import`) creates their profiles in one multi-row statement per chunk; a single save sends
/// a batch of one. Raw saves (fixtures) touch no other row; `save_profile` gives such a user
/// its profile on its next save.
async fn create_profile(users: &[User], signal: &mut PostSaveBatch<'_>) -> Result<()> {
    if signal.raw() {
        return Ok(());
    }
    let mut profiles: Vec<Profile> = users
        .iter()
        .zip(signal.created())
        .filter(|(_, created)| **created)
        .map(|(user, _)| Profile::blank(user.id.expect("a saved user has an id")))
        .collect();
    Profile::bulk_save(signal.tx(), &mut profiles).await?;
    Ok(())
}

/// The seed's `save_profile`, without its pitfall: Django's `instance.profile.save()` raises
/// `RelatedObjectDoesNotExist` for a user that has no profile (created before the app existed,
/// or imported as raw rows). Here that user gets one. The profiles of the users just created
/// were written by `create_profile` a moment ago: saving them again would change nothing.
async fn save_profile(users: &[User], signal: &mut PostSaveBatch<'_>) -> Result<()> {
    if signal.raw() {
        return Ok(());
    }
    let updated: Vec<i64> = users
        .iter()
        .zip(signal.created())
        .filter(|(_, created)| !**created)
        .filter_map(|(user, _)| user.id)
        .collect();
    if updated.is_empty() {
        return Ok(());
    }
    let mut profiles: Vec<Profile> = Profile::query()
        .filter(Profile::USER_ID.in_(updated.iter().copied()))
        .all(signal.tx())
        .await?;
    Profile::bulk_save(signal.tx(), &mut profiles).await?;
    for user_id in updated {
        if profiles.iter().any(|p| p.user_id == user_id) {
            continue;
        }
        // Two concurrent saves of this user may both get here; the unique constraint on
        // `user_id` lets one insert win. The savepoint keeps the transaction usable for the
        // loser (PostgreSQL aborts a transaction on a failed statement otherwise).
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
    Ok(())
}

/// Removes the photo file once the profile's delete is committed; a rolled-back delete keeps
/// it (the usual Django clean-up receiver, made safe by `on_commit`).
async fn remove_photo(profile: &Profile, signal: &mut PostDelete<'_>) -> Result<()> {
    let photo = profile.photo.clone();
    signal.on_commit(async move { media::remove(&photo) });
    Ok(())
}

/// A user with its profile, as the admin shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// The user.
    pub user: User,
    /// Its profile.
    pub profile: Profile,
}

impl Account {
    /// Loads `username` and its profile.
    pub async fn load(db: &Db, username: &str) -> std::result::Result<Account, crate::Error> {
        let user = User::by_username(db, username)
            .await?
            .ok_or_else(|| crate::Error::UnknownUser(username.to_owned()))?;
        let profile = match Profile::for_user(db, &user).await? {
            Some(profile) => profile,
            None => {
                // A user from before the app existed: saving it runs save_profile.
                let mut user = user.clone();
                user.save(db).await?;
                Profile::for_user(db, &user)
                    .await?
                    .ok_or_else(|| crate::Error::UnknownUser(username.to_owned()))?
            }
        };
        Ok(Account { user, profile })
    }
}

impl Account {
    /// Loads `username` and its profile inside `tx`, the profile's row locked until `tx` ends
    /// (`SELECT .. FOR UPDATE`; SQLite's write transaction holds the lock already): a change
    /// made from it cannot be lost to, or lose, a concurrent one.
    pub async fn load_for_update(
        tx: &mut Tx,
        username: &str,
    ) -> std::result::Result<Account, crate::Error> {
        let unknown = || crate::Error::UnknownUser(username.to_owned());
        let mut user = User::by_username(&mut *tx, username)
            .await?
            .ok_or_else(unknown)?;
        if Profile::for_user(&mut *tx, &user).await?.is_none() {
            // A user from before the app existed: saving it runs save_profile.
            user.save(&mut *tx).await?;
        }
        let profile = Profile::for_user(&mut *tx, &user)
            .await?
            .ok_or_else(unknown)?;
        let key = profile.id.ok_or_else(unknown)?;
        let profile = Profile::get_for_update(tx, key)
            .await?
            .ok_or_else(unknown)?;
        Ok(Account { user, profile })
    }
}

/// The seed's `Profile.__str__`.
impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Profile of {}", self.user.username)
    }
}
