use signals_core::{Instance, PostSave, connect_any_post_delete};

fn main() {
    // A post_save receiver connected to every model's post_delete.
    connect_any_post_delete("audit", async |_: &Instance<'_>, _: &mut PostSave<'_>| Ok(()));
}
