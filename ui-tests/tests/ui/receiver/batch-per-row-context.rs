use signals_core::{Model, PostSave, Result};

// A batched receiver gets the batch context.
#[derive(Model)]
#[post_save(create_profiles, batch)]
struct User {
    id: Option<i64>,
}

async fn create_profiles(_: &[User], _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
