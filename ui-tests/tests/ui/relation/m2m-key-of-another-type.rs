use signals_core::{Db, Model};

#[derive(Model)]
#[model(many_to_many(tags: Tag, through = PostTag))]
struct Post {
    id: Option<i64>,
}

#[derive(Model)]
struct Tag {
    #[model(primary_key)]
    name: String,
}

#[derive(Model)]
struct PostTag {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    #[model(foreign_key = Tag, on_delete = cascade)]
    tag: String,
}

async fn tag(db: &Db, post: &Post) {
    // Tags are keyed by name, not by number.
    let _ = post.tags().add(db, [7i64]).await;
}

fn main() {
    let _ = tag;
}
