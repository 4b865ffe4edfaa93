//! The admin site's edges, request by request (no browser): what an anonymous visitor, a
//! forged or token-less form, a missing row and an oversized upload get, on every backend.
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use example_account::admin::{AdminState, router};
use example_account::{Profile, User, migrate};
use signals_core::Db;
use signals_tests::url_test;
use tower::ServiceExt as _;

/// One response: its status, where it redirects, the cookie it sets, and its body.
struct Reply {
    status: StatusCode,
    location: String,
    cookie: Option<String>,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        location,
        cookie,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

fn post_form(uri: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

fn token_in(body: &str) -> String {
    let at = body.find("name=\"csrf_token\" value=\"").unwrap() + 25;
    body[at..].split('"').next().unwrap().to_owned()
}

/// Logs `admin` in; returns the session cookie and its token.
async fn log_in(app: &Router) -> (String, String) {
    let page = send(app, get("/admin/login/", "")).await;
    let cookie = page.cookie.unwrap();
    let token = token_in(&page.body);
    let form = format!("username=admin&password=s3cret&csrf_token={token}");
    let done = send(app, post_form("/admin/login/", &cookie, &form)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let cookie = done.cookie.unwrap();
    let list = send(app, get("/admin/account/profile/", &cookie)).await;
    assert_eq!(list.status, StatusCode::OK);
    let token = token_in(&list.body);
    (cookie, token)
}

url_test!(async fn the_admin_refuses_what_it_must(url) {
    // Process-wide settings, the same for the three backends' tests.
    static MEDIA: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    example_account::set_media_root(MEDIA.get_or_init(|| tempfile::tempdir().unwrap()).path());
    example_account::set_max_upload_size(1024);
    let db = Db::connect(&url).await.unwrap();
    migrate(&db).await.unwrap();
    User::create_staff_user(&db, "admin", "", "s3cret").await.unwrap();
    let bob = User::create_user(&db, "bob", "", "pw").await.unwrap();
    let profile = Profile::for_user(&db, &bob).await.unwrap().unwrap();
    let app = router(AdminState::new(db.clone(), None).unwrap());

    // Anonymous: every page and every action leads to the login page, and does nothing.
    for req in [
        get("/admin/account/profile/", ""),
        get("/admin/account/user/add/", ""),
        post_form(&format!("/admin/account/user/{}/delete/", bob.id.unwrap()), "", "csrf_token=x"),
    ] {
        let reply = send(&app, req).await;
        assert_eq!(reply.location, "/admin/login/");
    }
    // A login without the token its page set is refused.
    let reply = send(&app, post_form("/admin/login/", "", "username=admin&password=s3cret")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.contains("CSRF verification failed"));

    let (cookie, token) = log_in(&app).await;
    // Another session's token is not this one's.
    let (_, other) = log_in(&app).await;
    let uri = format!("/admin/account/user/{}/delete/", bob.id.unwrap());
    for form in [String::new(), format!("csrf_token={other}")] {
        let reply = send(&app, post_form(&uri, &cookie, &form)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{form}");
    }
    assert!(User::by_username(&db, "bob").await.unwrap().is_some());

    // Missing rows: a page saying so.
    let reply = send(&app, get("/admin/account/profile/999999/change/", &cookie)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // An upload over the limit: refused beside the field, as `set-photo` refuses it.
    let boundary = "XyZ";
    let mut body = Vec::new();
    for (name, value) in [("csrf_token", token.as_str()), ("date_of_birth", "")] {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes());
    }
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").bytes());
    body.extend(std::iter::repeat_n(b'x', 4096));
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let req = Request::post(format!("/admin/account/profile/{}/change/", profile.id.unwrap()))
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("id=\"error-photo\""), "{}", reply.body);
    assert!(reply.body.contains("more than the 1024 allowed"), "{}", reply.body);
    assert_eq!(Profile::for_user(&db, &bob).await.unwrap().unwrap().photo, "");

    // Logged out: the session no longer opens the list.
    let reply = send(&app, post_form("/admin/logout/", &cookie, &format!("csrf_token={token}"))).await;
    assert_eq!(reply.location, "/admin/login/");
    db.close().await;
});
