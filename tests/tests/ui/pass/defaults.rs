//! No attributes at all: the table is the struct's name in snake_case, the key is `id`.
use signals_core::Model;

#[derive(Model)]
struct BlogPost {
    id: i64,
    title: String,
}

fn main() {
    assert_eq!(BlogPost::META.table, "blog_post");
    assert_eq!(BlogPost::META.primary_key, 0);
    assert!(BlogPost::META.receivers.post_save.is_empty());
}
