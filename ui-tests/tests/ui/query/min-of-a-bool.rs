use signals_core::Model;

#[derive(Model)]
struct Post {
    id: Option<i64>,
    published: bool,
}

fn main() {
    let _ = Post::query().values(Post::PUBLISHED.min());
}
