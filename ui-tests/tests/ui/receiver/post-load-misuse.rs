use signals_core::{Model, Result};

#[derive(Model)]
#[post_load(verify, robust)]
#[post_load(normalize, changed(body))]
#[post_load(decrypt, durable)]
#[post_load(batch, check)]
struct Doc {
    id: Option<i64>,
    #[post_load(verify)]
    body: String,
}

fn verify(_: &mut Doc) -> Result<()> {
    Ok(())
}
fn normalize(_: &mut Doc) -> Result<()> {
    Ok(())
}
fn decrypt(_: &mut Doc) -> Result<()> {
    Ok(())
}
fn check(_: &mut Doc) -> Result<()> {
    Ok(())
}

fn main() {}
