use signals_core::{Committed, Model, Result};

#[derive(Clone, Model)]
#[on_commit(welcome, robust)]
struct User {
    id: Option<i64>,
}

async fn welcome(_: User, _: Committed) -> Result<()> {
    Ok(())
}

fn main() {}
