use signals_core::{Model, PostSave, connect_post_save};

#[derive(Model)]
struct User {
    id: Option<i64>,
}

#[derive(Model)]
struct Profile {
    id: Option<i64>,
}

fn main() {
    // A receiver of `Profile` connected to `User`.
    connect_post_save::<User, _>("audit", async |_: &Profile, _: &mut PostSave<'_>| Ok(()));
}
