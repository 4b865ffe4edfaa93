//! The admin's pages: login, the profile list, adding a user, changing a profile, deleting a
//! user after a confirmation. Every POST checks the session's CSRF token first; bad input is
//! shown beside its field, never as a server error.

use std::collections::HashMap;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::PrivateCookieJar;
use minijinja::context;
use serde::{Deserialize, Serialize};
use signals_core::Model;

use super::error::AdminError;
use super::extract::{ClientAddr, CsrfForm, CsrfMultipart, MultipartForm, Tokened};
use super::session::{Session, Staff};
use super::{AdminState, guard};
use crate::{Error, Profile, User};

/// A handler's result: its page, or the page of what went wrong.
type Page = Result<Response, AdminError>;

fn render(state: &AdminState, name: &str, ctx: minijinja::Value) -> Page {
    let html = state.templates().get_template(name)?.render(ctx)?;
    Ok(Html(html).into_response())
}

pub(crate) async fn home() -> Redirect {
    Redirect::to("/admin/account/profile/")
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

impl Tokened for LoginForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

pub(crate) async fn login_form(State(state): State<AdminState>, jar: PrivateCookieJar) -> Page {
    let session = Session::read(&jar).unwrap_or_else(Session::anonymous);
    let jar = session.store(jar);
    let page = render(
        &state,
        "login.html",
        context! { csrf_token => session.csrf, username => "", error => "" },
    )?;
    Ok((jar, page).into_response())
}

pub(crate) async fn login(
    State(state): State<AdminState>,
    ClientAddr(addr): ClientAddr,
    jar: PrivateCookieJar,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Page {
    let session = Session::read(&jar).ok_or(AdminError::Csrf)?;
    // The name typed, shown back in the form: at most as long as a username can be.
    let typed: String = form.username.chars().take(guard::MAX_USERNAME).collect();
    let page = |error: String, status: StatusCode| -> Page {
        let mut page = render(
            &state,
            "login.html",
            context! { csrf_token => session.csrf, username => typed, error },
        )?;
        *page.status_mut() = status;
        Ok(page)
    };
    let throttle = state.throttle();
    // How long a refused attempt must wait, said on the page and in `Retry-After`.
    let refuse = |wait: std::time::Duration| -> Page {
        let secs = wait.as_millis().div_ceil(1000).max(1);
        let mut reply = page(
            format!("Too many failed login attempts. Try again in {secs} seconds."),
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        let value =
            HeaderValue::from_str(&secs.to_string()).unwrap_or(HeaderValue::from_static("1"));
        reply.headers_mut().insert(header::RETRY_AFTER, value);
        Ok(reply)
    };
    if let Err(wait) = throttle.attempt(&form.username, addr) {
        // Refused before any lookup or hashing: a flood costs nothing here.
        return refuse(wait);
    }
    // A name longer than any user's, or a password longer than any checked, is wrong without
    // a lookup or a hash.
    let fits = form.username.chars().count() <= guard::MAX_USERNAME
        && form.password.len() <= guard::MAX_PASSWORD;
    let user = if fits {
        User::by_username(state.db(), &form.username).await?
    } else {
        None
    };
    // However the name was spelt, the account it found counts the attempt too.
    if let Some(id) = user.as_ref().and_then(|u| u.id)
        && let Err(wait) = throttle.attempt_account(id, addr)
    {
        return refuse(wait);
    }
    // One Argon2 check for every attempt that fits, against a dummy hash when the name is no
    // active staff user's: the answer takes as long whoever it names.
    let staff = user.filter(|u| u.is_active && u.is_staff);
    let hash = staff.as_ref().map(|u| u.password.clone());
    if fits
        && guard::verify(form.password.clone(), hash).await
        && let Some(user) = staff
    {
        throttle.succeeded(&form.username, user.id.unwrap_or_default(), addr);
        // A new session, with a new key and token, for the logged-in user.
        let jar = Session::begin(&state, &user).await?.store(jar);
        return Ok((jar, Redirect::to("/admin/account/profile/")).into_response());
    }
    page(
        "Please enter the correct username and password for a staff account. Note that both \
         fields may be case-sensitive."
            .into(),
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    csrf_token: String,
}

impl Tokened for TokenForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

pub(crate) async fn logout(
    State(state): State<AdminState>,
    staff: Staff,
    jar: PrivateCookieJar,
    CsrfForm(_): CsrfForm<TokenForm>,
) -> Page {
    // The row goes: a copy of the cookie opens nothing after this.
    staff.session.end(&state).await?;
    Ok((Session::clear(jar), Redirect::to("/admin/login/")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    o: String,
    #[serde(default)]
    p: Option<usize>,
    #[serde(default)]
    deleted: Option<u8>,
}

/// A row of the list.
#[derive(Serialize)]
struct Row {
    user_id: i64,
    profile_id: i64,
    username: String,
    date_of_birth: String,
    photo: String,
}

/// A column header: its label, and the ordering a click on it asks for.
#[derive(Serialize)]
struct Column {
    label: &'static str,
    order: String,
    sorted: &'static str,
}

pub(crate) async fn list(
    staff: Staff,
    State(state): State<AdminState>,
    Query(query): Query<ListQuery>,
) -> Page {
    let page = super::list::list_page(state.db(), &query.q, &query.o, query.p.unwrap_or(1)).await?;
    let shown: Vec<Row> = page
        .rows
        .into_iter()
        .filter_map(|(p, user)| {
            Some(Row {
                user_id: p.user_id,
                profile_id: p.id?,
                username: user.username,
                date_of_birth: p.date_of_birth.map(|d| d.to_string()).unwrap_or_default(),
                photo: p.photo,
            })
        })
        .collect();
    let (key, descending) = page.ordering;
    let columns: Vec<Column> = [
        ("user", "user"),
        ("date of birth", "date_of_birth"),
        ("photo", "photo"),
    ]
    .into_iter()
    .map(|(label, name)| {
        let current = key == name;
        Column {
            label,
            order: if current && !descending {
                format!("-{name}")
            } else {
                name.to_owned()
            },
            sorted: match (current, descending) {
                (true, false) => "ascending",
                (true, true) => "descending",
                _ => "",
            },
        }
    })
    .collect();
    render(
        &state,
        "list.html",
        context! {
            staff => staff.user.username,
            csrf_token => staff.session.csrf,
            rows => shown,
            columns,
            q => query.q,
            o => query.o,
            page => page.page,
            pages => page.pages,
            total => page.total,
            deleted => query.deleted.is_some(),
        },
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct AddForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password1: String,
    #[serde(default)]
    password2: String,
    #[serde(default)]
    csrf_token: String,
}

impl Tokened for AddForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

fn add_page(
    state: &AdminState,
    staff: &Staff,
    form: &AddForm,
    errors: &HashMap<&str, String>,
) -> Page {
    render(
        state,
        "user_add.html",
        context! {
            staff => staff.user.username,
            csrf_token => staff.session.csrf,
            username => form.username,
            email => form.email,
            errors => errors,
        },
    )
}

pub(crate) async fn add_form(staff: Staff, State(state): State<AdminState>) -> Page {
    add_page(&state, &staff, &AddForm::default(), &HashMap::new())
}

pub(crate) async fn add(
    staff: Staff,
    State(state): State<AdminState>,
    CsrfForm(form): CsrfForm<AddForm>,
) -> Page {
    let mut errors: HashMap<&str, String> = HashMap::new();
    if form.password1.is_empty() {
        errors.insert("password1", "This field is required.".into());
    } else if form.password1 != form.password2 {
        errors.insert("password2", "The two password fields didn’t match.".into());
    }
    if let Err(err) = crate::validate_username(&form.username) {
        errors.insert("username", err.to_string());
    }
    if let Err(err) = crate::validate_email(&form.email) {
        errors.insert("email", err.to_string());
    }
    if !errors.is_empty() {
        return add_page(&state, &staff, &form, &errors);
    }
    match User::create_user(state.db(), &form.username, &form.email, &form.password1).await {
        Ok(user) => {
            let profile = Profile::for_user(state.db(), &user).await?;
            Ok(match profile.and_then(|p| p.id) {
                Some(id) => Redirect::to(&format!("/admin/account/profile/{id}/change/?added=1"))
                    .into_response(),
                None => Redirect::to("/admin/account/profile/").into_response(),
            })
        }
        Err(err) => {
            let field = match err {
                Error::UsernameTaken(_) | Error::BadUsername(_) => "username",
                Error::BadEmail(_) => "email",
                Error::EmptyPassword | Error::Password(_) => "password1",
                err => return Err(err.into()),
            };
            errors.insert(field, err.to_string());
            add_page(&state, &staff, &form, &errors)
        }
    }
}

/// The profile with key `id` and its user.
async fn account(state: &AdminState, id: i64) -> Result<(Profile, User), AdminError> {
    let profile = Profile::get(state.db(), id)
        .await?
        .ok_or(AdminError::NotFound("profile"))?;
    let user = User::get(state.db(), profile.user_id)
        .await?
        .ok_or(AdminError::NotFound("profile"))?;
    Ok((profile, user))
}

#[derive(Deserialize)]
pub(crate) struct ChangeQuery {
    #[serde(default)]
    added: Option<u8>,
}

fn change_page(
    state: &AdminState,
    staff: &Staff,
    profile: &Profile,
    user: &User,
    date: &str,
    errors: &HashMap<&str, String>,
    note: &str,
) -> Page {
    render(
        state,
        "profile_change.html",
        context! {
            staff => staff.user.username,
            csrf_token => staff.session.csrf,
            profile_id => profile.id,
            user_id => user.id,
            username => user.username,
            date_of_birth => date,
            photo => profile.photo,
            errors => errors,
            note,
        },
    )
}

pub(crate) async fn change_form(
    staff: Staff,
    State(state): State<AdminState>,
    Path(id): Path<i64>,
    Query(query): Query<ChangeQuery>,
) -> Page {
    let (profile, user) = account(&state, id).await?;
    let date = profile
        .date_of_birth
        .map(|d| d.to_string())
        .unwrap_or_default();
    let note = if query.added.is_some() {
        "The user was added; its profile was created by create_profile. You may edit it below."
    } else {
        ""
    };
    change_page(
        &state,
        &staff,
        &profile,
        &user,
        &date,
        &HashMap::new(),
        note,
    )
}

/// What the change form posted.
#[derive(Default)]
pub(crate) struct ChangeForm {
    csrf_token: String,
    date_of_birth: String,
    photo: Option<(String, Vec<u8>)>,
}

impl Tokened for ChangeForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl MultipartForm for ChangeForm {
    async fn read(mut multipart: Multipart) -> Result<Self, String> {
        let mut form = ChangeForm::default();
        while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or_default().to_owned();
            match name.as_str() {
                "csrf_token" => form.csrf_token = field.text().await.map_err(|e| e.to_string())?,
                "date_of_birth" => {
                    form.date_of_birth = field.text().await.map_err(|e| e.to_string())?;
                }
                "photo" => {
                    let file_name = field.file_name().unwrap_or_default().to_owned();
                    let bytes = field.bytes().await.map_err(|e| e.to_string())?;
                    if !file_name.is_empty() || !bytes.is_empty() {
                        form.photo = Some((file_name, bytes.to_vec()));
                    }
                }
                _ => {}
            }
        }
        Ok(form)
    }
}

/// Keeps an uploaded file as `set-photo` reads one: in a folder of its own (removed with the
/// returned `TempDir`, whatever happens next), under its cleaned name. `Err` says why it
/// cannot be used, for the form.
fn keep_upload(
    name: &str,
    bytes: &[u8],
) -> Result<(tempfile::TempDir, std::path::PathBuf), String> {
    let dir = tempfile::Builder::new()
        .prefix("admin-upload-")
        .tempdir()
        .map_err(|e| format!("the upload could not be kept: {e}"))?;
    let name = crate::valid_file_name(name);
    let name = if name.is_empty() {
        "upload".to_owned()
    } else {
        name
    };
    let path = dir.path().join(&name);
    std::fs::write(&path, bytes).map_err(|_| "the upload could not be kept".to_owned())?;
    // Named as it was sent, never by the server's temporary path.
    crate::check_image(&path).map_err(|e| e.shown_as(&name).to_string())?;
    Ok((dir, path))
}

pub(crate) async fn change(
    staff: Staff,
    State(state): State<AdminState>,
    Path(id): Path<i64>,
    CsrfMultipart(form): CsrfMultipart<ChangeForm>,
) -> Page {
    let (profile, user) = account(&state, id).await?;
    let mut errors: HashMap<&str, String> = HashMap::new();
    let date = form.date_of_birth.trim();
    let parsed = if date.is_empty() {
        None
    } else {
        match crate::parse_date(date) {
            Ok(d) => Some(d),
            Err(err) => {
                errors.insert("date_of_birth", err.to_string());
                None
            }
        }
    };
    let upload = match &form.photo {
        Some((name, bytes)) => match keep_upload(name, bytes) {
            Ok(kept) => Some(kept),
            Err(err) => {
                errors.insert("photo", err);
                None
            }
        },
        None => None,
    };
    if !errors.is_empty() {
        return change_page(&state, &staff, &profile, &user, date, &errors, "");
    }
    let photo = upload.as_ref().map(|(_, path)| path.as_path());
    match apply_change(&state, &user, parsed, photo).await {
        Ok(()) => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &user.username)
                .finish();
            Ok(Redirect::to(&format!("/admin/account/profile/?{query}")).into_response())
        }
        Err(
            err @ (Error::NotAnImage(_)
            | Error::TooLarge { .. }
            | Error::TooManyPixels { .. }
            | Error::WrongExtension { .. }),
        ) => {
            let name = photo
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            errors.insert("photo", err.shown_as(&name).to_string());
            change_page(&state, &staff, &profile, &user, date, &errors, "")
        }
        Err(err) => Err(err.into()),
    }
}

/// The date and the photo in one transaction: two submissions at once land as one or the
/// other, never a mix.
async fn apply_change(
    state: &AdminState,
    user: &User,
    date: Option<chrono::NaiveDate>,
    photo: Option<&std::path::Path>,
) -> Result<(), Error> {
    crate::set_profile(state.db(), &user.username, date, photo).await?;
    Ok(())
}

/// The user with key `id`.
async fn user(state: &AdminState, id: i64) -> Result<User, AdminError> {
    User::get(state.db(), id)
        .await?
        .ok_or(AdminError::NotFound("user"))
}

pub(crate) async fn delete_form(
    staff: Staff,
    State(state): State<AdminState>,
    Path(id): Path<i64>,
) -> Page {
    let user = user(&state, id).await?;
    let profile = Profile::for_user(state.db(), &user).await?;
    render(
        &state,
        "delete.html",
        context! {
            staff => staff.user.username,
            csrf_token => staff.session.csrf,
            user_id => user.id,
            username => user.username,
            profile => profile.is_some(),
            photo => profile.map(|p| p.photo).unwrap_or_default(),
        },
    )
}

pub(crate) async fn delete(
    _staff: Staff,
    State(state): State<AdminState>,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<TokenForm>,
) -> Page {
    let user = user(&state, id).await?;
    crate::delete_user(state.db(), &user.username).await?;
    Ok(Redirect::to("/admin/account/profile/?deleted=1").into_response())
}
