use signals_core::Model;

#[derive(Model)]
#[model(unique_together(post_id, tag))]
struct PostTag {
    id: Option<i64>,
    post_id: i64,
    tag_id: i64,
}

#[derive(Model)]
#[model(unique_together(post_id))]
struct Single {
    id: Option<i64>,
    post_id: i64,
}

fn main() {}
