use signals_core::{FieldType, Model, PostSave, Result};

// No `PartialEq`: a change cannot be told.
#[derive(Debug, Clone, FieldType)]
struct Tag(String);

#[derive(Model)]
#[post_save(notify, changed(tag))]
struct Post {
    id: Option<i64>,
    tag: Tag,
}

async fn notify(_: &Post, _: &mut PostSave<'_>) -> Result<()> {
    Ok(())
}

fn main() {}
