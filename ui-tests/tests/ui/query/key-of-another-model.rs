use signals_core::Model;

#[derive(Model)]
struct Author {
    id: Option<i64>,
}

#[derive(Model)]
struct Post {
    id: Option<i64>,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
}

fn main() {
    // Post ids are not author ids: compare with the posts' `author_id` instead.
    let _ = Author::query().filter(Author::ID.in_query(Post::query()));
    // These are the right pairings, and compile.
    let _ = Author::query().filter(Author::ID.in_query(Post::query().select(Post::AUTHOR_ID)));
    let _ = Post::query().filter(Post::AUTHOR_ID.in_query(Author::query()));
}
