use signals_core::Model;

#[derive(Model)]
struct Author {
    id: Option<i64>,
    name: String,
}

#[derive(Model)]
struct Post {
    id: Option<i64>,
    author: String,
}

fn main() {
    let _ = Post::query().filter(Post::AUTHOR.matches(Author::NAME.eq("ada")));
}
