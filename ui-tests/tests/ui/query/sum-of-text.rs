use signals_core::Model;

#[derive(Model)]
struct Post {
    id: Option<i64>,
    title: String,
}

fn main() {
    let _ = Post::query().values(Post::TITLE.sum());
}
