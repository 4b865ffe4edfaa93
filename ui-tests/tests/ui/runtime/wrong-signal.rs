use signals_core::{Model, PreSave, Result, connect_post_save};

#[derive(Model)]
struct User {
    id: Option<i64>,
}

async fn normalize(_: &mut User, _: &mut PreSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {
    // A pre_save receiver connected to post_save.
    connect_post_save::<User, _>("normalize", normalize);
}
