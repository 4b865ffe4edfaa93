use signals_core::Model;

#[derive(Model)]
struct Post {
    id: Option<i64>,
    title: String,
}

#[derive(Model)]
struct Comment {
    id: Option<i64>,
    body: String,
}

fn main() {
    let _ = Post::query().filter(Comment::BODY.eq("x"));
}
