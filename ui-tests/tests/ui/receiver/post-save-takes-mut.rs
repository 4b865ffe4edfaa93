use signals_core::{Model, PostSave, Result};

#[derive(Model)]
#[post_save(create_profile)]
struct User {
    id: Option<i64>,
}

// post_save receivers get `&User`: the row is written, changing the instance would be lost.
async fn create_profile(_: &mut User, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
