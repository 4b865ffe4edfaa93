//! The admin site in a real browser: headless Chromium driven through ChromeDriver (Debian's
//! `chromium` and `chromium-driver`), against the site served in-process on each backend.
//! Without ChromeDriver the tests are skipped, except under `CI`, where they fail.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use example_account::admin::{AdminState, router};
use example_account::{Profile, User, migrate};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use signals_core::{Db, Model};
use signals_tests::url_test;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The media root of this test process: the three backends' sites share it.
fn media_root() -> &'static Path {
    crate::media_root()
}

/// A ChromeDriver of this test's own, stopped when dropped; `None` (the test skipped) when
/// it is not installed, outside CI.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn driver() -> Option<Driver> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: {CHROMEDRIVER} and {CHROMIUM} are needed (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no {CHROMEDRIVER} or {CHROMIUM}");
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(Driver {
        child,
        port,
        profile: tempfile::tempdir().unwrap(),
    })
}

/// A headless Chromium session on `driver`, with a fresh profile and nothing downloaded.
async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", driver.profile.path().display()),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap()
}

/// Serves the admin site over `db` on a port of its own; returns its base URL.
async fn serve(db: &Db) -> String {
    media_root();
    let state = AdminState::new(db.clone(), None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    format!("http://{addr}")
}

/// A 96x96 avatar (`tests/fixtures/photo.png`).
const PNG: &[u8] = include_bytes!("../fixtures/photo.png");

const HOSTILE: &str = "<script>document.title='pwned'</script><b>bold</b>";

async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

async fn fill(c: &Client, id: &str, value: &str) {
    let field = c.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Clicks `id` and waits for the page it leads to: the old document marked, the new one
/// loaded without the mark.
async fn click(c: &Client, id: &str) {
    c.execute("window.__left = true", vec![]).await.unwrap();
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..400 {
        let fresh = c
            .execute(
                "return window.__left === undefined && document.readyState === 'complete'",
                vec![],
            )
            .await;
        if matches!(fresh, Ok(ref v) if *v == serde_json::json!(true)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("clicking `{id}` led to no new page");
}

/// The usernames in the list, in order.
async fn listed(c: &Client) -> Vec<String> {
    let mut names = Vec::new();
    for cell in c.find_all(Locator::Css("td.field-user a")).await.unwrap() {
        names.push(cell.text().await.unwrap());
    }
    names
}

url_test!(async fn the_admin_in_a_browser(url) {
    let Some(driver) = driver().await else { return };
    let db = Db::connect(&url).await.unwrap();
    migrate(&db).await.unwrap();
    User::create_staff_user(&db, "admin", "admin@example.com", "s3cret").await.unwrap();
    User::create_user(&db, "bob", "", "bobpw").await.unwrap();
    let mut users: Vec<User> = (0..30)
        .map(|i| User {
            id: None,
            username: format!("user{i:02}"),
            email: String::new(),
            password: "!".into(),
            date_joined: chrono::Utc::now(),
            is_active: true,
            is_staff: false,
        })
        .collect();
    // A name no form would take, written straight through the model: it must render as text.
    users.push(User { username: HOSTILE.into(), ..users[0].clone() });
    User::bulk_save(&db, &mut users).await.unwrap();
    let base = serve(&db).await;
    let c = browser(&driver).await;

    // Not logged in: the login page. A non-staff user and a wrong password are refused.
    c.goto(&format!("{base}/admin/account/profile/")).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().ends_with("/admin/login/"));
    for (name, password) in [("bob", "bobpw"), ("admin", "wrong")] {
        fill(&c, "id_username", name).await;
        fill(&c, "id_password", password).await;
        click(&c, "login-submit").await;
        assert!(text(&c, "login-error").await.contains("staff account"));
    }
    fill(&c, "id_username", "admin").await;
    fill(&c, "id_password", "s3cret").await;
    click(&c, "login-submit").await;
    assert_eq!(text(&c, "staff").await, "admin");

    // The list: 33 profiles, 25 a page, ordered by username; the hostile name is text.
    assert_eq!(text(&c, "result-count").await, "33 profiles");
    let first = listed(&c).await;
    assert_eq!(first.len(), 25);
    assert_eq!(first[0], HOSTILE, "rendered as text, escaped");
    assert_eq!(c.title().await.unwrap(), "Select profile to change | example-account admin");
    let injected = c
        .execute("return document.querySelectorAll('td script, td b').length", vec![])
        .await
        .unwrap();
    assert_eq!(injected, serde_json::json!(0));
    click(&c, "next").await;
    assert_eq!(text(&c, "page").await, "2");
    assert_eq!(listed(&c).await.len(), 8);
    click(&c, "sort-1").await; // username, descending
    assert_eq!(listed(&c).await[0], "user29");

    // Search by username.
    fill(&c, "searchbar", "user1").await;
    click(&c, "search-submit").await;
    assert_eq!(text(&c, "result-count").await, "10 profiles");

    // Add a user: the passwords must match; the profile comes from `create_profile`.
    click(&c, "add-user").await;
    fill(&c, "id_username", "carol").await;
    fill(&c, "id_email", "carol@example.com").await;
    fill(&c, "id_password1", "pw1").await;
    fill(&c, "id_password2", "pw2").await;
    click(&c, "save").await;
    assert!(text(&c, "error-password2").await.contains("didn’t match"));
    fill(&c, "id_username", "bob").await;
    fill(&c, "id_password1", "pw").await;
    fill(&c, "id_password2", "pw").await;
    click(&c, "save").await;
    assert!(text(&c, "error-username").await.contains("already taken"));
    fill(&c, "id_username", "carol").await;
    fill(&c, "id_password1", "pw").await;
    fill(&c, "id_password2", "pw").await;
    click(&c, "save").await;
    assert!(text(&c, "note").await.contains("create_profile"));
    assert_eq!(text(&c, "profile-of").await, "Profile of carol");

    // A bad date and a file that is not an image: errors beside the fields, nothing saved.
    let uploads = tempfile::tempdir().unwrap();
    let fake = uploads.path().join("fake.png");
    std::fs::write(&fake, b"not an image at all").unwrap();
    fill(&c, "id_date_of_birth", "1990-02-30").await;
    c.find(Locator::Id("id_photo")).await.unwrap().send_keys(fake.to_str().unwrap()).await.unwrap();
    click(&c, "save").await;
    assert!(text(&c, "error-date_of_birth").await.contains("malformed date"));
    assert!(text(&c, "error-photo").await.contains("not an image"));
    let carol = User::by_username(&db, "carol").await.unwrap().unwrap();
    let profile = Profile::for_user(&db, &carol).await.unwrap().unwrap();
    assert_eq!((profile.date_of_birth, profile.photo.as_str()), (None, ""));

    // A good date and a photo: the list shows them, the thumbnail loads.
    // A name of this backend's own: the three sites share the media root, and a name freed
    // by one's delete could be taken by another's upload.
    let backend = format!("{:?}", db.backend()).to_lowercase();
    let png = uploads.path().join(format!("me-{backend}.png"));
    std::fs::write(&png, PNG).unwrap();
    fill(&c, "id_date_of_birth", "1990-05-17").await;
    c.find(Locator::Id("id_photo")).await.unwrap().send_keys(png.to_str().unwrap()).await.unwrap();
    click(&c, "save").await;
    assert_eq!(listed(&c).await, ["carol"]);
    assert_eq!(
        c.find(Locator::Css("td.field-date_of_birth")).await.unwrap().text().await.unwrap(),
        "1990-05-17"
    );
    let loaded = c
        .execute(
            "const img = document.querySelector('td.field-photo img'); \
             return img.decode().then(() => img.naturalWidth)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded, serde_json::json!(96), "the thumbnail is the uploaded image");
    let profile = Profile::for_user(&db, &carol).await.unwrap().unwrap();
    assert!(
        profile.photo.starts_with("users/") && profile.photo.ends_with(&format!("/me-{backend}.png")),
        "{}",
        profile.photo
    );
    assert!(media_root().join(&profile.photo).exists());

    // The list page, kept out of git (target/ is ignored).
    c.goto(&format!("{base}/admin/account/profile/")).await.unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/admin-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join(format!("list-{backend}.png")), c.screenshot().await.unwrap()).unwrap();

    // A POST without the session's token is refused, and changes nothing. (Posted by a form
    // the test adds to the page: the pages' Content-Security-Policy allows no `fetch`.)
    c.execute(
        &format!(
            "const f = document.createElement('form'); f.method = 'POST'; \
             f.action = '/admin/account/user/{}/delete/'; \
             const i = document.createElement('input'); i.name = 'csrf_token'; \
             i.value = 'forged'; f.appendChild(i); document.body.appendChild(f); f.submit();",
            carol.id.unwrap()
        ),
        vec![],
    )
    .await
    .unwrap();
    c.wait()
        .for_element(Locator::XPath("//*[contains(text(), 'CSRF verification failed')]"))
        .await
        .unwrap();
    assert!(User::by_username(&db, "carol").await.unwrap().is_some());

    // Delete with a confirmation page listing what the cascade deletes.
    c.goto(&format!("{base}/admin/account/user/{}/delete/", carol.id.unwrap())).await.unwrap();
    let listed_items = text(&c, "deleted-objects").await;
    assert!(listed_items.contains("Profile: Profile of carol"), "{listed_items}");
    assert!(listed_items.contains(&profile.photo), "{listed_items}");
    click(&c, "confirm").await;
    assert!(text(&c, "note").await.contains("deleted"));
    assert!(User::by_username(&db, "carol").await.unwrap().is_none());
    assert!(!media_root().join(&profile.photo).exists(), "the photo went after the commit");

    // Log out: back to the login page, and the list is closed again.
    click(&c, "logout").await;
    assert!(c.current_url().await.unwrap().as_str().ends_with("/admin/login/"));
    c.goto(&format!("{base}/admin/account/profile/")).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().ends_with("/admin/login/"));
    c.close().await.unwrap();
    db.close().await;
});
