//! The generated code uses absolute paths only: it compiles next to local items that shadow
//! the prelude, in a crate with no direct sqlx dependency, and works.
#![allow(dead_code, non_camel_case_types, unused_imports)]

struct Result;
struct Ok;
struct Err;
struct Option;
struct Some;
struct None;
struct String;
struct Vec;
struct Box;
struct Future;
struct Send;
mod core {}
mod std {}
mod sqlx {}
trait Model {}
trait Executor {}

mod models {
    use super::*;
    use ::signals_core::{PostSave, PreSave};

    #[derive(::core::fmt::Debug, ::signals_core::Model)]
    #[model(table = "hygienic")]
    #[pre_save(touch)]
    #[post_save(self::after, crate::hygiene::models::after_too)]
    pub(crate) struct Hygienic {
        pub(crate) id: ::core::option::Option<i64>,
        pub(crate) name: ::std::string::String,
        pub(crate) data: ::std::vec::Vec<u8>,
    }

    #[derive(::signals_core::Model)]
    pub(crate) struct Child {
        pub(crate) id: ::core::option::Option<i64>,
        #[model(foreign_key = Hygienic, on_delete = cascade)]
        pub(crate) parent_id: i64,
    }

    async fn touch(h: &mut Hygienic, _: &mut PreSave<'_>) -> ::signals_core::Result<()> {
        h.name.push('!');
        ::core::result::Result::Ok(())
    }

    async fn after(_: &Hygienic, _: &mut PostSave<'_>) -> ::signals_core::Result<()> {
        ::core::result::Result::Ok(())
    }

    async fn after_too(_: &Hygienic, _: &mut PostSave<'_>) -> ::signals_core::Result<()> {
        ::core::result::Result::Ok(())
    }
}

#[::tokio::test]
async fn derived_model_works_next_to_shadowing_items() {
    use ::signals_core::Model as _;
    let db = ::signals_core::Db::connect("sqlite::memory:")
        .await
        .unwrap();
    db.execute_unprepared(
        "CREATE TABLE hygienic (id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB NOT NULL);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL);",
    )
    .await
    .unwrap();
    let mut h = models::Hygienic {
        id: ::core::option::Option::None,
        name: "x".into(),
        data: ::std::vec![1],
    };
    h.save(&db).await.unwrap();
    let mut child = models::Child {
        id: ::core::option::Option::None,
        parent_id: h.id.unwrap(),
    };
    child.save(&db).await.unwrap();
    let loaded = models::Hygienic::get(&db, h.id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.name, "x!");
    assert_eq!(
        models::Child::for_parent(&db, &loaded).await.unwrap().len(),
        1
    );
    assert_eq!(h.delete(&db).await.unwrap().total(), 2);
}
