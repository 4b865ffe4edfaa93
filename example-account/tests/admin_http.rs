//! The admin site's edges, request by request (no browser): what an anonymous visitor, a
//! forged or token-less form, a missing row and an oversized upload get, on every backend.
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use example_account::admin::{AdminState, router};
use example_account::{Profile, User, migrate};
use signals_core::{Db, Model as _};
use signals_tests::url_test;
use tower::ServiceExt as _;

/// One response: its status, where it redirects, the cookie it sets, and its body.
struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    location: String,
    cookie: Option<String>,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
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
        headers,
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
    log_in_as(app, "admin", "s3cret").await
}

/// Logs `username` in with `password`; returns the session cookie and its token.
async fn log_in_as(app: &Router, username: &str, password: &str) -> (String, String) {
    let page = send(app, get("/admin/login/", "")).await;
    let cookie = page.cookie.unwrap();
    let token = token_in(&page.body);
    let form = format!("username={username}&password={password}&csrf_token={token}");
    let done = send(app, post_form("/admin/login/", &cookie, &form)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let cookie = done.cookie.unwrap();
    let list = send(app, get("/admin/account/profile/", &cookie)).await;
    assert_eq!(list.status, StatusCode::OK);
    let token = token_in(&list.body);
    (cookie, token)
}

/// The tests that time logins or flood the password threads (every Argon2 of the process runs
/// on one thread per core) run alone; the rest of this binary's tests, which log in too, run
/// beside each other (tests run eight at a time, `.cargo/config.toml`).
static ARGON: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

url_test!(async fn the_admin_refuses_what_it_must(url) {
    let _argon = ARGON.read().await;
    // Process-wide settings, the same for the three backends' tests.
    static MEDIA: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    example_account::set_media_root(MEDIA.get_or_init(|| tempfile::tempdir().unwrap()).path());
    example_account::set_max_upload_size(1024);
    let (db, app) = site(&url).await;
    let bob = User::create_user(&db, "bob", "", "pw").await.unwrap();
    let profile = Profile::for_user(&db, &bob).await.unwrap().unwrap();

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

/// A migrated database at `url` with the staff user `admin` (password `s3cret`), and the
/// admin site on it.
async fn site(url: &str) -> (Db, Router) {
    let db = Db::connect(url).await.unwrap();
    migrate(&db).await.unwrap();
    User::create_staff_user(&db, "admin", "", "s3cret")
        .await
        .unwrap();
    let app = router(AdminState::new(db.clone(), None).unwrap());
    (db, app)
}

/// Whether `cookie` still opens the list (else it is sent to the login page).
async fn opens_the_list(app: &Router, cookie: &str) -> bool {
    let reply = send(app, get("/admin/account/profile/", cookie)).await;
    match reply.status {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert_eq!(reply.location, "/admin/login/");
            false
        }
        other => panic!("{other}: {}", reply.body),
    }
}

async fn sessions_of(db: &Db, user: &User) -> i64 {
    let mut sql = signals_core::Sql::new(db.backend());
    sql.push("SELECT COUNT(*) FROM admin_session WHERE user_id = ");
    sql.bind(&user.id.unwrap()).unwrap();
    let (n,): (i64,) = sql.fetch_optional(db).await.unwrap().unwrap();
    n
}

url_test!(async fn sessions_end_at_logout_expiry_and_when_their_user_changes(url) {
    let _argon = ARGON.read().await;
    let db = Db::connect(&url).await.unwrap();
    migrate(&db).await.unwrap();
    let mut admin = User::create_staff_user(&db, "admin", "", "s3cret").await.unwrap();
    let app = router(AdminState::new(db.clone(), None).unwrap());

    // Logout ends the session: a copy of its cookie saved before opens nothing.
    let (saved, token) = log_in(&app).await;
    assert!(opens_the_list(&app, &saved).await);
    let reply = send(&app, post_form("/admin/logout/", &saved, &format!("csrf_token={token}"))).await;
    assert_eq!(reply.location, "/admin/login/");
    assert!(!opens_the_list(&app, &saved).await, "a cookie saved before logout");
    assert_eq!(sessions_of(&db, &admin).await, 0);

    // A changed password ends every session of the user (Django keys them to the hash).
    let (cookie, _) = log_in(&app).await;
    let other = User::create_user(&db, "other", "", "n3w").await.unwrap();
    admin.password = other.password.clone();
    admin.save(&db).await.unwrap();
    assert!(!opens_the_list(&app, &cookie).await, "after a password change");
    assert_eq!(sessions_of(&db, &admin).await, 0, "the session's row is gone");

    // No longer staff, or no longer active: refused, and the session is over for good.
    for change in [|u: &mut User| u.is_staff = false, |u: &mut User| u.is_active = false] {
        let (cookie, _) = log_in_as(&app, "admin", "n3w").await;
        change(&mut admin);
        admin.save(&db).await.unwrap();
        assert!(!opens_the_list(&app, &cookie).await);
        admin.is_staff = true;
        admin.is_active = true;
        admin.save(&db).await.unwrap();
        assert!(!opens_the_list(&app, &cookie).await, "made staff again, the session stays ended");
    }

    // Expired: two weeks after the login (the row's `expires_at`), it opens nothing.
    let (cookie, _) = log_in_as(&app, "admin", "n3w").await;
    assert!(opens_the_list(&app, &cookie).await);
    let mut sql = signals_core::Sql::new(db.backend());
    sql.push("UPDATE admin_session SET expires_at = ");
    sql.bind(&(chrono::Utc::now() - chrono::TimeDelta::seconds(1))).unwrap();
    sql.execute(&db).await.unwrap();
    assert!(!opens_the_list(&app, &cookie).await, "expired");
    let cookie_header = send(&app, get("/admin/login/", "")).await;
    assert!(cookie_header.cookie.is_some());

    // A deleted user's session ends with the user, and never becomes the session of a user
    // created after with the same id (SQLite reused the highest id before migration 0006 gave
    // its tables AUTOINCREMENT; a restored backup or a row written by hand still can).
    let mallory = User::create_staff_user(&db, "mallory", "", "m4l").await.unwrap();
    let (cookie, _) = log_in_as(&app, "mallory", "m4l").await;
    assert!(opens_the_list(&app, &cookie).await);
    example_account::delete_user(&db, "mallory").await.unwrap();
    let mut sql = signals_core::Sql::new(db.backend());
    sql.push("INSERT INTO account_user (id, username, email, password, date_joined, is_active, is_staff) VALUES (")
        .bind(&mallory.id.unwrap())
        .unwrap()
        .push(", 'newadmin', '', '!', ")
        .bind(&chrono::Utc::now())
        .unwrap()
        .push(", TRUE, TRUE)");
    sql.execute(&db).await.unwrap();
    assert!(!opens_the_list(&app, &cookie).await, "mallory's cookie is nobody's session");
    db.close().await;
});

/// A request from `addr`, as a served connection gives it.
fn from(addr: [u8; 4], mut req: Request<Body>) -> Request<Body> {
    let addr = std::net::SocketAddr::from((addr, 40000));
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    req
}

async fn try_login(app: &Router, addr: [u8; 4], username: &str, password: &str) -> Reply {
    let page = send(app, get("/admin/login/", "")).await;
    let cookie = page.cookie.unwrap();
    let token = token_in(&page.body);
    let form = format!("username={username}&password={password}&csrf_token={token}");
    send(app, from(addr, post_form("/admin/login/", &cookie, &form))).await
}

/// The process's resident memory, in MiB.
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

url_test!(async fn a_flood_of_logins_stays_bounded_and_a_real_login_still_works(url) {
    let _argon = ARGON.write().await;
    let (db, app) = site(&url).await;
    for i in 0..40 {
        User::create_staff_user(&db, &format!("staff{i}"), "", "pw").await.unwrap();
    }

    // 120 wrong logins at once, from 120 addresses, naming staff users, other users and no
    // one: every one is checked (none is throttled), at most one per core at a time.
    let before = rss_mib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let watch = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_mib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let attempts: Vec<_> = (0..120u8)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let name = match i % 3 {
                    0 => format!("staff{}", i % 40),
                    1 => "nobody".to_owned(),
                    _ => "admin".to_owned(),
                };
                try_login(&app, [10, 1, 0, i], &name, "wrong").await.status
            })
        })
        .collect();
    for attempt in attempts {
        assert_eq!(attempt.await.unwrap(), StatusCode::OK, "refused as a wrong password");
    }
    watch.abort();
    let grew = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before);
    // Unbounded, 100 concurrent attempts took 3.3 GB (19 MiB of Argon2 each, on as many
    // threads); now every Argon2 of the process runs on one password thread per core (two
    // here: 38 MiB), whichever backend's test sends it.
    eprintln!("login flood: resident memory grew by {grew} MiB");
    assert!(grew < 100, "memory grew by {grew} MiB");

    // The real user, from another address, logs in at once.
    let reply = try_login(&app, [10, 2, 0, 1], "admin", "s3cret").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    db.close().await;
});

url_test!(async fn repeated_failures_are_slowed_down_for_that_user_and_address_only(url) {
    let _argon = ARGON.write().await;
    let (db, app) = site(&url).await;
    let attacker = [10, 3, 0, 1];
    for _ in 0..5 {
        let reply = try_login(&app, attacker, "admin", "wrong").await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // The sixth, even with the right password and the name written otherwise, must wait:
    // refused before any check, saying for how long.
    for name in ["admin", "ADMIN", "admin%20%20"] {
        let reply = try_login(&app, attacker, name, "s3cret").await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert!(reply.body.contains("Too many failed login attempts"), "{}", reply.body);
        assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    }
    // Another spelling is another name on every backend: MariaDB's tables compared `admïn` as
    // `admin` (`utf8mb4_general_ci`) until migration 0006 made them `utf8mb4_bin` (issue 28),
    // so it is throttled for the address alone, and the password of `admin` opens nothing.
    let other = [10, 3, 0, 9];
    for name in ["adm%C3%AFn", "%C3%A0dmin", "%C3%81DM%C3%8DN"] {
        let reply = try_login(&app, other, name, "s3cret").await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: refused as a wrong login");
        assert!(reply.body.contains("Please enter the correct"), "{name}: {}", reply.body);
    }
    // The real user elsewhere is not locked out.
    let reply = try_login(&app, [10, 3, 0, 2], "admin", "s3cret").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    // And the wait is short: a second after the fifth failure the right password works.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reply = try_login(&app, attacker, "admin", "s3cret").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);

    // Attempts sent all at once are counted before any is checked: of 50 wrong passwords
    // from one new address, five are checked, the rest wait.
    let replies = futures_util::future::join_all(
        (0..50).map(|_| try_login(&app, [10, 3, 0, 3], "admin", "wrong")),
    )
    .await;
    let checked = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    let refused = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, refused), (5, 45));

    // A name of megabytes is neither looked up nor kept whole, nor echoed back.
    let huge = "a".repeat(5_000_000);
    let reply = try_login(&app, [10, 3, 0, 4], &huge, "wrong").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.len() < 20_000, "{} bytes", reply.body.len());
    db.close().await;
});

/// A request whose body never ends is answered `408` after the request timeout.
#[tokio::test(flavor = "current_thread")]
async fn a_body_that_never_ends_times_out() {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    migrate(&db).await.unwrap();
    let app = router(AdminState::new(db, None).unwrap());
    let page = send(&app, get("/admin/login/", "")).await;
    let cookie = page.cookie.unwrap();
    tokio::time::pause();
    let never = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let req = Request::post("/admin/login/")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, "100000")
        .body(Body::from_stream(never))
        .unwrap();
    let started = tokio::time::Instant::now();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(
        reply.headers.get("x-frame-options").unwrap(),
        "DENY",
        "a 408 carries the headers"
    );
    let waited = started.elapsed();
    let limit = example_account::admin::REQUEST_TIMEOUT;
    assert!(
        waited >= limit && waited < limit + std::time::Duration::from_secs(1),
        "{waited:?}"
    );
}

url_test!(async fn login_timing_does_not_tell_staff_from_other_names(url) {
    let _argon = ARGON.write().await;
    let (db, app) = site(&url).await;
    User::create_user(&db, "bob", "", "pw").await.unwrap();
    let mut medians = Vec::new();
    for (n, name) in ["admin", "bob", "nobody"].into_iter().enumerate() {
        let mut times = Vec::new();
        for i in 0..7u8 {
            let start = std::time::Instant::now();
            let reply = try_login(&app, [10, 4, n as u8, i], name, "wrong").await;
            times.push(start.elapsed());
            assert_eq!(reply.status, StatusCode::OK);
        }
        times.sort();
        medians.push(times[3]);
    }
    let (min, max) = (medians.iter().min().unwrap(), medians.iter().max().unwrap());
    // Before: 74.6 ms for staff, 4.7 ms for other users, 2.7 ms for unknown names.
    assert!(max.as_secs_f64() < 2.5 * min.as_secs_f64(), "medians {medians:?}");
    db.close().await;
});

url_test!(async fn bad_input_is_a_400_and_every_page_carries_the_security_headers(url) {
    let _argon = ARGON.read().await;
    let (db, app) = site(&url).await;

    // A NUL in the login form (PostgreSQL cannot store one) is a 400 that shows no database's
    // words; so in a staff user's form.
    let page = send(&app, get("/admin/login/", "")).await;
    let cookie = page.cookie.unwrap();
    let token = token_in(&page.body);
    let form = format!("username=ad%00min&password=x&csrf_token={token}");
    let reply = send(&app, post_form("/admin/login/", &cookie, &form)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(!reply.body.contains("PostgreSQL") && !reply.body.contains("cannot"), "{}", reply.body);
    let (cookie, token) = log_in(&app).await;
    let form = format!("username=eve%00&email=&password1=a&password2=a&csrf_token={token}");
    let reply = send(&app, post_form("/admin/account/user/add/", &cookie, &form)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(User::by_username(&db, "eve").await.unwrap().is_none());
    // Dates no backend stores alike (MariaDB refuses year 0, the others would store it) are a
    // form error everywhere, as in Django: years 1 to 9999.
    let admin_user = User::by_username(&db, "admin").await.unwrap().unwrap();
    let profile = Profile::for_user(&db, &admin_user).await.unwrap().unwrap();
    for date in ["0000-01-01", "-0001-01-01", "+10000-01-01", "10000-01-01"] {
        let reply = send(&app, profile_form(&profile, &cookie, &token, date, "", b"")).await;
        assert_eq!(reply.status, StatusCode::OK, "{date}: {}", reply.body);
        assert!(reply.body.contains("id=\"error-date_of_birth\""), "{date}: {}", reply.body);
    }
    assert_eq!(Profile::for_user(&db, &admin_user).await.unwrap().unwrap().date_of_birth, None);

    // The headers a production admin needs, on pages, redirects and errors alike.
    for (uri, cookie, status) in [
        ("/admin/login/", "", StatusCode::OK),
        ("/admin/account/profile/", cookie.as_str(), StatusCode::OK),
        ("/admin/account/profile/", "", StatusCode::SEE_OTHER),
        ("/admin/account/profile/999999/change/", cookie.as_str(), StatusCode::NOT_FOUND),
        ("/admin/static/admin.css", "", StatusCode::OK),
    ] {
        let reply = send(&app, get(uri, cookie)).await;
        assert_eq!(reply.status, status, "{uri}");
        let h = |name: &str| reply.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("x-frame-options").as_deref(), Some("DENY"), "{uri}");
        assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"), "{uri}");
        assert_eq!(h("referrer-policy").as_deref(), Some("same-origin"), "{uri}");
        let csp = h("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h("cache-control").as_deref(), Some("no-store"), "{uri}");
    }
    db.close().await;
});

/// 200 connections that send half a request and wait are closed by the server after its
/// header-read timeout; one address cannot hold more than its share of connections; and the
/// server still serves a whole request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let db = Db::connect("sqlite::memory:").await.unwrap();
    migrate(&db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AdminState::new(db, None).unwrap();
    tokio::spawn(example_account::admin::serve_on(listener, state));
    // From four client addresses (loopback has them all), fifty each: under the per-address cap.
    let connect_from = |last: u8| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind((std::net::Ipv4Addr::new(127, 0, 0, last), 0).into())
            .unwrap();
        socket.connect(addr).await.unwrap()
    };
    let mut idle = Vec::new();
    for i in 0..200 {
        let mut stream = connect_from(10 + (i % 4) as u8).await;
        stream
            .write_all(b"GET /admin/login/ HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(stream);
    }
    // One address holding its cap of connections: the next one from it is closed at once.
    let mut held = Vec::new();
    for _ in 0..example_account::admin::MAX_CONNECTIONS_PER_ADDRESS {
        held.push(connect_from(20).await);
    }
    let mut extra = connect_from(20).await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), extra.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the connection over the cap is closed: {read:?}"
    );
    drop(held);
    let limit = example_account::admin::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(10);
    let closed = tokio::time::timeout(limit, async {
        for mut stream in idle {
            let mut buf = Vec::new();
            // The server answers 408 or just closes; either way the stream ends.
            let _ = stream.read_to_end(&mut buf).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "idle half-sent requests still open after {limit:?}"
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /admin/login/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("x-frame-options: deny"),
        "{reply}"
    );
}

/// A PNG's first bytes, declaring `width` × `height` pixels (all `check_image` reads).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(width.to_be_bytes());
    png.extend(height.to_be_bytes());
    png.extend(b"\x08\x06\0\0\0\x1f\x15\xc4\x89");
    png
}

/// The profile form posted with `date` and a photo `name` holding `bytes`.
fn profile_form(
    profile: &Profile,
    cookie: &str,
    token: &str,
    date: &str,
    name: &str,
    bytes: &[u8],
) -> Request<Body> {
    let boundary = "XyZ";
    let mut body = Vec::new();
    for (field, value) in [("csrf_token", token), ("date_of_birth", date)] {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n").bytes());
    }
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").bytes());
    body.extend(bytes);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    Request::post(format!(
        "/admin/account/profile/{}/change/",
        profile.id.unwrap()
    ))
    .header(header::COOKIE, cookie)
    .header(
        header::CONTENT_TYPE,
        format!("multipart/form-data; boundary={boundary}"),
    )
    .body(Body::from(body))
    .unwrap()
}

url_test!(async fn decompression_bombs_are_refused_and_profile_forms_land_whole(url) {
    let _argon = ARGON.read().await;
    static MEDIA: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    example_account::set_media_root(MEDIA.get_or_init(|| tempfile::tempdir().unwrap()).path());
    let (db, app) = site(&url).await;
    let bob = User::create_user(&db, "bob", "", "pw").await.unwrap();
    let profile = Profile::for_user(&db, &bob).await.unwrap().unwrap();
    let (cookie, token) = log_in(&app).await;

    // 100000 × 100000 pixels declared in a few bytes: refused beside the field, named as
    // uploaded, with no server path on the page.
    let reply = send(&app, profile_form(&profile, &cookie, &token, "", "bomb.png", &png_header(100_000, 100_000))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("id=\"error-photo\""), "{}", reply.body);
    assert!(reply.body.contains("`bomb.png` declares 100000×100000 pixels"), "{}", reply.body);
    assert!(!reply.body.contains("admin-upload-") && !reply.body.contains("/tmp"), "{}", reply.body);
    assert_eq!(Profile::for_user(&db, &bob).await.unwrap().unwrap().photo, "");
    // The same bound for the command line's check.
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, png_header(100_000, 100_000)).unwrap();
    assert!(matches!(
        example_account::check_image(&bomb),
        Err(example_account::Error::TooManyPixels { width: 100_000, height: 100_000, .. })
    ));

    // Two submissions of the form at once, round after round: the profile ends as one of
    // them, its date and its photo together.
    for round in 0..20 {
        let a = profile_form(&profile, &cookie, &token, "2000-01-01", &format!("a{round}.png"), &png_header(1, 1));
        let b = profile_form(&profile, &cookie, &token, "1999-09-09", &format!("b{round}.png"), &png_header(1, 1));
        let (ra, rb) = tokio::join!(send(&app, a), send(&app, b));
        assert_eq!((ra.status, rb.status), (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER), "{} {}", ra.body, rb.body);
        let now = Profile::for_user(&db, &bob).await.unwrap().unwrap();
        let date = now.date_of_birth.unwrap().to_string();
        let file = now.photo.rsplit('/').next().unwrap().to_owned();
        let expected = if date == "2000-01-01" { "a" } else { "b" };
        assert!(file.starts_with(&format!("{expected}{round}")), "round {round}: {date} with {file}");
    }
    db.close().await;
});
