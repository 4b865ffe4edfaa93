use signals_core::{Model, PreSave, Result};

#[derive(Model)]
#[post_save(create_profile)]
struct User {
    id: Option<i64>,
}

async fn create_profile(_: &User, _: &mut PreSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
