use signals_core::{Model, PostSave, Result};

#[derive(Clone, Model)]
#[on_commit(welcome, batch)]
#[post_save(notify, batch, changed(name))]
#[pre_delete(batch)]
struct User {
    id: Option<i64>,
    name: String,
}

async fn welcome(_: User, _: signals_core::Committed) -> Result<()> {
    Ok(())
}

async fn notify(_: &User, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
