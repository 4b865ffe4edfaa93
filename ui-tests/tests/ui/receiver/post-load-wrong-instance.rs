use signals_core::{Model, Result};

#[derive(Model)]
#[post_load(verify)]
struct Doc {
    id: Option<i64>,
}

// Takes the instance by shared reference: a `post_load` receiver gets `&mut`.
fn verify(_: &Doc) -> Result<()> {
    Ok(())
}

fn main() {}
