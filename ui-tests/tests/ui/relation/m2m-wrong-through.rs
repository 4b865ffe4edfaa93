use signals_core::Model;

#[derive(Model)]
#[model(many_to_many(tags: Tag, through = PostAuthor))]
struct Post {
    id: Option<i64>,
}

#[derive(Model)]
struct Tag {
    id: Option<i64>,
}

#[derive(Model)]
struct Author {
    id: Option<i64>,
}

/// Links posts to authors, not to tags.
#[derive(Model)]
struct PostAuthor {
    id: Option<i64>,
    #[model(foreign_key = Post, on_delete = cascade)]
    post_id: i64,
    #[model(foreign_key = Author, on_delete = cascade)]
    author_id: i64,
}

fn main() {}
