//! The admin's list of profiles as one page: searched (case-insensitive, in the username),
//! ordered (by the user's username across the relation, the date of birth or the photo) and
//! paged in SQL, each profile read with its user in the same statement. Nothing here holds
//! more than a page, whatever the table's size.

use signals_core::{Db, Model, Order, Query};

use crate::{Error, Profile, User};

/// Rows per page of the list, as Django's `list_per_page`.
pub const PER_PAGE: usize = 25;

/// The columns the list can be ordered by, as the `o` parameter names them (`-` before a
/// name orders it descending): `user` (the default), `date_of_birth`, `photo`.
pub const ORDERINGS: [&str; 3] = ["user", "date_of_birth", "photo"];

/// One page of the list.
#[derive(Debug)]
pub struct ListPage {
    /// The page's profiles, each with its user.
    pub rows: Vec<(Profile, User)>,
    /// How many profiles match the search.
    pub total: usize,
    /// The page shown (from 1), clamped to the pages there are.
    pub page: usize,
    /// How many pages there are (at least 1).
    pub pages: usize,
    /// The ordering's column (one of [`ORDERINGS`]) and whether it is descending.
    pub ordering: (&'static str, bool),
}

/// The profiles whose user's username contains `search` (ASCII letters' case ignored; all
/// of them when it is blank).
fn searched(search: &str) -> Query<Profile> {
    let search = search.trim();
    let query = Profile::query();
    if search.is_empty() {
        query
    } else {
        query.filter(Profile::USER_ID.matches(User::USERNAME.icontains(search)))
    }
}

/// Page `page` (from 1, clamped) of the profiles matching `search`, ordered by `order` (a
/// name of [`ORDERINGS`], `-` before it for descending; anything else orders by username),
/// ties in key order: two statements, a count and the page.
pub async fn list_page(db: &Db, search: &str, order: &str, page: usize) -> Result<ListPage, Error> {
    let (name, descending) = match order.strip_prefix('-') {
        Some(name) => (name, true),
        None => (order, false),
    };
    let name = ORDERINGS.into_iter().find(|o| *o == name).unwrap_or("user");
    let direction = |asc: Order<Profile>, desc: Order<Profile>| if descending { desc } else { asc };
    let by = match name {
        "date_of_birth" => direction(Profile::DATE_OF_BIRTH.asc(), Profile::DATE_OF_BIRTH.desc()),
        "photo" => direction(Profile::PHOTO.asc(), Profile::PHOTO.desc()),
        _ => direction(
            Profile::USER_ID.by(User::USERNAME.asc()),
            Profile::USER_ID.by(User::USERNAME.desc()),
        ),
    };
    // Usernames are unique: an ordering by them needs no tie-breaker, which would keep the
    // database from reading the page straight off the username index.
    let ties = (name != "user").then(|| direction(Profile::ID.asc(), Profile::ID.desc()));
    let total = usize::try_from(searched(search).count(db).await?).unwrap_or(0);
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let mut query = searched(search).order_by(by);
    if let Some(ties) = ties {
        query = query.order_by(ties);
    }
    let rows = query
        .limit(PER_PAGE as u64)
        .offset(((page - 1) * PER_PAGE) as u64)
        .select_related(Profile::USER_ID)
        .all(db)
        .await?;
    Ok(ListPage {
        rows,
        total,
        page,
        pages,
        ordering: (name, descending),
    })
}
