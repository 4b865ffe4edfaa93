use std::cell::Cell;
use std::rc::Rc;

use signals_core::{Model, PostSave, connect_post_save};

#[derive(Model)]
struct User {
    id: Option<i64>,
}

fn main() {
    // Saves run on any thread of the runtime: a receiver's state must be `Send`.
    let saves = Rc::new(Cell::new(0));
    connect_post_save::<User, _>("count", async move |_: &User, _: &mut PostSave<'_>| {
        saves.set(saves.get() + 1);
        Ok(())
    });
}
