use signals_core::{Model, Result};

#[derive(Model)]
#[post_load(verify)]
struct Doc {
    id: Option<i64>,
    body: String,
}

// `post_load` receivers run while rows are decoded: plain functions, not async.
async fn verify(_: &mut Doc) -> Result<()> {
    Ok(())
}

fn main() {}
