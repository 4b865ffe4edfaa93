use signals_core::durable::Delivery;
use signals_core::{Model, PostSave};

async fn welcome(_: User, _: &mut Delivery<'_>) -> signals_core::Result<()> {
    Ok(())
}

async fn audit(_: &User, _: &mut PostSave<'_>) -> signals_core::Result<()> {
    Ok(())
}

#[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
#[post_save(audit, durable)]
#[on_commit(welcome, durable, changed(nmae))]
#[on_commit(durable)]
struct User {
    id: Option<i64>,
    name: String,
}

fn main() {}
