use signals_core::Model;

#[derive(Model)]
struct Author {
    id: Option<i64>,
}

#[derive(Model)]
struct Tag {
    id: Option<i64>,
}

#[derive(Model)]
struct Post {
    id: Option<i64>,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
    published: bool,
}

fn main() {
    // Authors are what a post's reference reaches, not tags.
    let _ = Tag::query().filter(Post::AUTHOR_ID.any(Post::PUBLISHED.eq(true)));
}
