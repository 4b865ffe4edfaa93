use signals_core::Model;

#[derive(Model)]
struct Post {
    id: Option<i64>,
    author_id: i64,
}

fn main() {
    let _ = Post::query().select_related(Post::AUTHOR_ID);
}
