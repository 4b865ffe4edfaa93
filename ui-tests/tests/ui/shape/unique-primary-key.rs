use signals_core::Model;

#[derive(Model)]
struct Tag {
    #[model(primary_key, unique)]
    name: String,
    #[model(uniqe)]
    slug: String,
}

fn main() {}
