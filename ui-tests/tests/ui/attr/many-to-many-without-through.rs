use signals_core::Model;

#[derive(Model)]
#[model(many_to_many(tags: Tag))]
struct Post {
    id: Option<i64>,
}

#[derive(Model)]
struct Tag {
    id: Option<i64>,
}

fn main() {}
