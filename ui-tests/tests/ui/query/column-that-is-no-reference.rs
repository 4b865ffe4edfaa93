use signals_core::Model;

#[derive(Model)]
struct Post {
    #[model(primary_key)]
    slug: String,
}

#[derive(Model)]
struct Comment {
    id: Option<i64>,
    post_id: i64,
}

fn main() {
    let _ = Comment::query().filter(Comment::POST_ID.in_query(Post::query()));
}
