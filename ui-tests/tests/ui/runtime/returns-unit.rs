use signals_core::{Model, PostSave, connect_post_save};

#[derive(Model)]
struct User {
    id: Option<i64>,
}

async fn audit(_: &User, _: &mut PostSave<'_>) {}

fn main() {
    connect_post_save::<User, _>("audit", audit);
}
