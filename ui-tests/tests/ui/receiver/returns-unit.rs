use signals_core::{Model, PostSave};

#[derive(Model)]
#[post_save(create_profile)]
struct User {
    id: Option<i64>,
}

async fn create_profile(_: &User, _: &mut PostSave<'_>) {}

fn main() {}
