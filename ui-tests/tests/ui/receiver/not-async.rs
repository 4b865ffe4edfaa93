use signals_core::{Model, PostSave, Result};

#[derive(Model)]
#[post_save(create_profile)]
struct User {
    id: Option<i64>,
}

fn create_profile(_: &User, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
