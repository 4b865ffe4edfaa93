//! What the derive accepts compiles and wires as documented (the UI cases that must pass;
//! the ones that must fail are `ui-tests/tests/ui`, run by `ui-tests/tests/compile.rs`).

/// No attributes at all: the table is the struct's name in snake_case, the key is `id`.
mod defaults {
    use signals_core::Model;

    #[derive(Model)]
    struct BlogPost {
        id: i64,
        title: String,
    }

    #[test]
    fn table_and_key_follow_the_struct() {
        assert_eq!(BlogPost::META.table, "blog_post");
        assert_eq!(BlogPost::META.primary_key, 0);
        assert!(BlogPost::META.receivers.post_save.is_empty());
    }
}

/// Everything the derive accepts, together.
mod full_wiring {
    use signals_core::{Model, PostDelete, PostSave, PreDelete, PreSave, Result};

    mod receivers {
        use super::User;
        use signals_core::{PostSave, Result};

        pub(super) async fn audit(_: &User, _: &mut PostSave<'_>) -> Result<()> {
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
    pub(super) struct User {
        pub id: Option<i64>,
        #[model(column = "login")]
        pub username: String,
        pub r#type: String,
    }

    #[derive(Debug, Clone, Model)]
    #[model(table = "account_profile")]
    pub(super) struct Profile {
        #[model(primary_key)]
        pub pk: Option<i32>,
        #[model(one_to_one = User, on_delete = cascade)]
        pub user_id: i64,
        #[model(foreign_key = crate::derive_pass::full_wiring::User, on_delete = set_null)]
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
    async fn save_profile(
        _: &User,
        _: &mut PostSave<'_>,
    ) -> std::result::Result<(), signals_core::sqlx::Error> {
        Ok(())
    }

    async fn before_delete(
        _: &User,
        _: &mut PreDelete<'_>,
    ) -> std::result::Result<(), signals_core::BoxError> {
        Ok(())
    }

    async fn after_delete(_: &User, _: &mut PostDelete<'_>) -> Result<()> {
        Ok(())
    }

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn everything_the_derive_accepts_compiles_and_wires() {
        assert_eq!(User::META.columns, ["id", "login", "type"]);
        assert_eq!(User::TYPE.name(), "type");
        assert_eq!(
            User::META.receivers.post_save,
            ["create_profile", "save_profile", "receivers::audit"]
        );
        // Futures are Send, so saves can run in spawned tasks.
        let db: Option<signals_core::Db> = None;
        if let Some(db) = &db {
            let mut user = User {
                id: None,
                username: String::new(),
                r#type: String::new(),
            };
            assert_send(async move { user.save(db).await });
            let db = db.clone();
            let db = &db;
            assert_send(async move {
                db.transaction(async |tx: &mut signals_core::Tx| {
                    let mut user = User {
                        id: None,
                        username: String::new(),
                        r#type: String::new(),
                    };
                    user.save(&mut *tx).await?;
                    Ok::<_, signals_core::Error>(())
                })
                .await
            });
            let profile = Profile {
                pk: None,
                user_id: 1,
                referrer_id: None,
                owner: 1,
            };
            assert_send(async move {
                let _ = profile.user(db).await;
                let _ = profile.referrer(db).await;
                let _ = profile.owner(db).await;
            });
        }
    }
}
