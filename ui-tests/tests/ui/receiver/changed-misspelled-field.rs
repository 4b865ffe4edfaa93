use signals_core::{Model, PostSave, Result};

#[derive(Model)]
#[post_save(notify, changed(stauts))]
struct Post {
    id: Option<i64>,
    status: String,
}

async fn notify(_: &Post, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
