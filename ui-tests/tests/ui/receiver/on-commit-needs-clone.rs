use signals_core::{Committed, Model, Result};

#[derive(Model)]
#[on_commit(welcome)]
struct User {
    id: Option<i64>,
}

async fn welcome(_: User, _: Committed) -> Result<()> {
    Ok(())
}

fn main() {}
