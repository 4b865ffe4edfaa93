use signals_core::{Model, PreDelete, Result};

#[derive(Model)]
#[pre_delete(archive, changed(status))]
struct Post {
    id: Option<i64>,
    status: String,
}

async fn archive(_: &Post, _: &mut PreDelete<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
