use signals_core::{Filter, Model};

#[derive(Model)]
struct Post {
    id: Option<i64>,
}

#[derive(Model)]
struct Tag {
    id: Option<i64>,
    name: String,
}

fn main() {
    let _ = Post::query().filter(Filter::linked::<Tag, _>(Tag::NAME.eq("rust")));
}
