use signals_core::Model;

#[derive(Model)]
struct Author {
    id: Option<i64>,
    name: String,
}

#[derive(Model)]
struct Tag {
    id: Option<i64>,
    name: String,
}

#[derive(Model)]
struct Post {
    id: Option<i64>,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
}

fn main() {
    let _ = Post::query().filter(Post::AUTHOR_ID.matches(Tag::NAME.eq("rust")));
}
