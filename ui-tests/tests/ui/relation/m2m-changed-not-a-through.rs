use signals_core::{M2mChange, M2mChanged, Model, Result};

#[derive(Model)]
struct Post {
    id: Option<i64>,
}

#[derive(Model)]
#[m2m_changed(changed)]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
}

async fn changed(_: &M2mChange<'_, Post, Post>, _: &mut M2mChanged<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
