use signals_core::Model;
use signals_core::durable::Delivery;

async fn welcome(_: User, _: &mut Delivery<'_>) -> signals_core::Result<()> {
    Ok(())
}

// A durable receiver's instance is stored as JSON: the model needs serde.
#[derive(Model, Clone)]
#[on_commit(welcome, durable)]
struct User {
    id: Option<i64>,
    name: String,
}

fn main() {}
