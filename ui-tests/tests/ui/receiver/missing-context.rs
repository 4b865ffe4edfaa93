use signals_core::{Model, Result};

#[derive(Model)]
#[post_save(create_profile)]
struct User {
    id: Option<i64>,
}

async fn create_profile(_: &User) -> Result<()> {
    Ok(())
}

fn main() {}
