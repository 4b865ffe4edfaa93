use signals_core::{Committed, Model};

// A durable receiver gets a `Delivery`, not what a plain `on_commit` receiver gets.
async fn welcome(_: User, _: Committed) -> signals_core::Result<()> {
    Ok(())
}

#[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
#[on_commit(welcome, durable)]
struct User {
    id: Option<i64>,
    name: String,
}

fn main() {}
