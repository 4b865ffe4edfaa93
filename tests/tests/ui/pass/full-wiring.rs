//! Everything the derive accepts, together.
use signals_core::{Model, PostDelete, PostSave, PreDelete, PreSave, Result};

mod receivers {
    use super::User;
    use signals_core::{PostSave, Result};

    pub async fn audit(_: &User, _: &mut PostSave<'_>) -> Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Model)]
#[model(table = "account_user")]
#[pre_save(normalize)]
#[post_save(create_profile, save_profile)]
#[post_save(receivers::audit, robust)]
#[pre_delete(before_delete)]
#[post_delete(after_delete)]
pub struct User {
    pub id: Option<i64>,
    #[model(column = "login")]
    pub username: String,
    pub r#type: String,
}

#[derive(Debug, Clone, Model)]
#[model(table = "account_profile")]
pub struct Profile {
    #[model(primary_key)]
    pub pk: Option<i32>,
    #[model(one_to_one = User, on_delete = cascade)]
    pub user_id: i64,
    #[model(foreign_key = crate::User, on_delete = set_null)]
    pub referrer_id: Option<i64>,
    #[model(foreign_key = User, on_delete = restrict)]
    pub owner: i64,
}

async fn normalize(user: &mut User, _: &mut PreSave<'_>) -> Result<()> {
    user.username = user.username.to_lowercase();
    Ok(())
}

async fn create_profile(_: &User, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

// Any error convertible into signals_core::Error works with `?`.
async fn save_profile(_: &User, _: &mut PostSave<'_>) -> std::result::Result<(), signals_core::sqlx::Error> {
    Ok(())
}

async fn before_delete(_: &User, _: &mut PreDelete<'_>) -> std::result::Result<(), signals_core::BoxError> {
    Ok(())
}

async fn after_delete(_: &User, _: &mut PostDelete<'_>) -> Result<()> {
    Ok(())
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_eq!(User::META.columns, ["id", "login", "type"]);
    assert_eq!(User::TYPE.name(), "type");
    assert_eq!(
        User::META.receivers.post_save,
        ["create_profile", "save_profile", "receivers::audit"]
    );
    // Futures are Send, so saves can run in spawned tasks.
    let db: Option<signals_core::Db> = None;
    if let Some(db) = &db {
        let mut user = User { id: None, username: String::new(), r#type: String::new() };
        assert_send(async move { user.save(db).await });
        let db = db.clone();
        let db = &db;
        assert_send(async move {
            db.transaction(async |tx: &mut signals_core::Tx| {
                let mut user = User { id: None, username: String::new(), r#type: String::new() };
                user.save(&mut *tx).await?;
                Ok::<_, signals_core::Error>(())
            })
            .await
        });
        let profile = Profile { pk: None, user_id: 1, referrer_id: None, owner: 1 };
        assert_send(async move {
            let _ = profile.user(db).await;
            let _ = profile.referrer(db).await;
            let _ = profile.owner(db).await;
        });
    }
}
