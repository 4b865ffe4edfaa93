use signals_core::Model;

#[derive(Model)]
struct Post {
    id: Option<i64>,
    views: i64,
}

fn main() {
    let _ = Post::query().filter(Post::VIEWS.gt("many"));
}
