use signals_core::{Model, PostSaveBatch, Result};

// A batched receiver takes the chunk as a slice, not one instance.
#[derive(Model)]
#[post_save(create_profiles, batch)]
struct User {
    id: Option<i64>,
}

async fn create_profiles(_: &User, _: &mut PostSaveBatch<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
