use signals_core::{Model, PostSave, Result};

#[derive(Model)]
struct User {
    id: Option<i64>,
    #[post_save(create_profile)]
    username: String,
}

async fn create_profile(_: &User, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
