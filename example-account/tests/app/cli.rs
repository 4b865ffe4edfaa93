//! The binary, run as a user would, on SQLite, PostgreSQL and MySQL: every subcommand and
//! every bad input (which must print one line, exit non-zero and change nothing).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use signals_core::{Db, PoolRef, sqlx};
use signals_tests::{count, url_test};

/// The binary, run in a temporary working directory with its own media root.
struct App {
    url: String,
    dir: tempfile::TempDir,
}

/// What one run printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl App {
    fn new(url: &str) -> App {
        App {
            url: url.to_owned(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run_with(&self, args: &[&str], stdin: &str) -> Run {
        let out = Command::cargo_bin("example-account")
            .unwrap()
            .current_dir(self.dir.path())
            .env("DATABASE_URL", &self.url)
            .env_remove("NATS_URL")
            .args(args)
            .write_stdin(stdin)
            .output()
            .unwrap();
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, "")
    }

    /// Runs and expects success.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(run.ok, "{args:?} failed: {}", run.stderr);
        run.stdout
    }

    /// Runs and expects one clear error line containing `expected`.
    fn fails(&self, args: &[&str], stdin: &str, expected: &str) {
        let run = self.run_with(args, stdin);
        assert!(!run.ok, "{args:?} succeeded: {}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
        assert!(run.stderr.starts_with("error: "), "{:?}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{:?} lacks {expected:?}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    }

    fn createuser(&self, name: &str) {
        let run = self.run_with(&["createuser", name, "--password-stdin"], "pw\n");
        assert!(run.ok, "createuser {name}: {}", run.stderr);
    }

    fn media(&self) -> PathBuf {
        self.dir.path().join("media")
    }

    fn media_files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(rel) = path.strip_prefix(base) {
                    out.push(rel.display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.media(), &self.media(), &mut out);
        out.sort();
        out
    }

    fn write_png(&self, name: &str) -> PathBuf {
        // The smallest valid PNG: a 1x1 image.
        const PNG: &[u8] = &[
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
            0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
            0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
            0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00,
            0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
        ];
        let path = self.dir.path().join(name);
        std::fs::write(&path, PNG).unwrap();
        path
    }

    async fn db(&self) -> Db {
        Db::connect(&self.url).await.unwrap()
    }
}

async fn scalar_text(db: &Db, sql: &str) -> String {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db.pool() {
        PoolRef::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        PoolRef::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        PoolRef::MySql(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        _ => unreachable!(),
    }
}

url_test!(async fn demo_tells_the_story_and_runs_again(url) {
    let app = App::new(&url);
    let first = app.ok(&[]);
    assert!(first.contains("create_user(\"johndoe\")"), "{first}");
    assert!(first.contains("Profile of johndoe"), "{first}");
    assert!(first.contains("johndoe  1990-05-17"), "{first}");
    let second = app.ok(&[]);
    assert!(second.contains("johndoe exists"), "{second}");
    let db = app.db().await;
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
});

url_test!(async fn createuser_hashes_the_password_and_makes_a_profile(url) {
    let app = App::new(&url);
    let out = app.run_with(&["createuser", "alice", "--email", "a@example.com", "--password-stdin"], "s3cret\n");
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("created user alice"), "{}", out.stdout);
    let db = app.db().await;
    let hash = scalar_text(&db, "SELECT password FROM account_user WHERE username = 'alice'").await;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("s3cret"));
    let user = example_account::User::by_username(&db, "alice").await.unwrap().unwrap();
    assert!(user.check_password("s3cret"));
    assert!(!user.check_password("wrong"));
    assert_eq!(count(&db, "account_profile").await, 1);
});

url_test!(async fn createuser_bad_input_changes_nothing(url) {
    let app = App::new(&url);
    app.createuser("alice");
    app.fails(&["createuser", "alice", "--password-stdin"], "pw\n", "`alice` is already taken");
    app.fails(&["createuser", "bad name", "--password-stdin"], "pw\n", "invalid username `bad name`");
    app.fails(&["createuser", "bob", "--password-stdin"], "\n", "password must not be empty");
    app.fails(&["createuser", "bob"], "", "pass --password-stdin");
    let db = app.db().await;
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
});

url_test!(async fn set_dob_and_its_errors(url) {
    let app = App::new(&url);
    app.createuser("alice");
    assert!(app.ok(&["set-dob", "alice", "1990-05-17"]).contains("set to 1990-05-17"));
    app.fails(&["set-dob", "alice", "17/05/1990"], "", "malformed date `17/05/1990`");
    app.fails(&["set-dob", "alice", "1990-02-30"], "", "malformed date");
    app.fails(&["set-dob", "nobody", "1990-05-17"], "", "no user named `nobody`");
    let show = app.ok(&["show", "alice"]);
    assert!(show.contains("date of birth: 1990-05-17"), "{show}");
});

url_test!(async fn set_email_leaves_a_note_telling_old_from_new(url) {
    let app = App::new(&url);
    let run = app.run_with(&["createuser", "alice", "--email", "alice@example.com", "--password-stdin"], "pw\n");
    assert!(run.ok, "{}", run.stderr);
    assert!(!run.stdout.contains("note to"), "a new user's address is no change: {}", run.stdout);
    let out = app.ok(&["set-email", "alice", "alice@example.org"]);
    assert_eq!(
        out,
        "note to alice: your email changed from alice@example.com to alice@example.org\n\
         email of alice set to alice@example.org\n"
    );
    // The same address again: no change, no note.
    let out = app.ok(&["set-email", "alice", "alice@example.org"]);
    assert_eq!(out, "email of alice set to alice@example.org\n");
    let out = app.ok(&["set-email", "alice", ""]);
    assert!(out.starts_with("note to alice: your email changed from alice@example.org to (none)\n"), "{out}");
    app.fails(&["set-email", "alice", "not an address"], "", "email");
    app.fails(&["set-email", "nobody", "a@example.com"], "", "no user named `nobody`");
    let show = app.ok(&["show", "alice"]);
    assert!(!show.contains("example.org"), "{show}");
});

url_test!(async fn set_photo_stores_replaces_and_refuses_non_images(url) {
    let app = App::new(&url);
    app.createuser("alice");
    let png = app.write_png("me.png");
    let out = app.ok(&["set-photo", "alice", png.to_str().unwrap()]);
    let today = chrono::Utc::now().format("users/%Y/%m/%d").to_string();
    assert!(out.contains(&format!("{today}/me.png")), "{out}");
    assert_eq!(app.media_files(), [format!("{today}/me.png")]);

    // A second upload replaces the first, whose file goes once the change commits.
    app.ok(&["set-photo", "alice", png.to_str().unwrap()]);
    assert_eq!(app.media_files(), [format!("{today}/me_1.png")]);

    let text = app.dir.path().join("notes.txt");
    std::fs::write(&text, "not an image").unwrap();
    app.fails(&["set-photo", "alice", text.to_str().unwrap()], "", "is not an image");
    app.fails(&["set-photo", "alice", "missing.png"], "", "no file at `missing.png`");
    app.fails(&["set-photo", "nobody", png.to_str().unwrap()], "", "no user named `nobody`");
    assert_eq!(app.media_files(), [format!("{today}/me_1.png")], "nothing stored or removed");
    let list = app.ok(&["list"]);
    assert!(list.contains(&format!("{today}/me_1.png")), "{list}");
});

url_test!(async fn list_and_show(url) {
    let app = App::new(&url);
    assert!(app.ok(&["list"]).contains("(no users)"));
    app.createuser("alice");
    app.createuser("bartholomew");
    app.ok(&["set-dob", "alice", "1990-05-17"]);
    let list = app.ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "user         date_of_birth  photo");
    assert_eq!(lines[1], "alice        1990-05-17     -");
    assert_eq!(lines[2], "bartholomew  -              -");
    let show = app.ok(&["show", "alice"]);
    assert!(show.starts_with("Profile of alice\n"), "{show}");
    assert!(show.contains("active:        yes"), "{show}");
    app.fails(&["show", "nobody"], "", "no user named `nobody`");
});

url_test!(async fn delete_cascades_and_removes_the_photo(url) {
    let app = App::new(&url);
    app.createuser("alice");
    app.createuser("bob");
    let png = app.write_png("me.png");
    app.ok(&["set-photo", "alice", png.to_str().unwrap()]);
    assert_eq!(app.media_files().len(), 1);
    let out = app.ok(&["delete", "alice"]);
    assert!(out.contains("deleted alice"), "{out}");
    assert!(app.media_files().is_empty(), "the photo went with the profile");
    let db = app.db().await;
    assert_eq!(count(&db, "account_user").await, 1);
    assert_eq!(count(&db, "account_profile").await, 1);
    app.fails(&["delete", "alice"], "", "no user named `alice`");
});

#[test]
fn unreachable_database_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("example-account")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "list",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot connect to `postgres://nobody@127.0.0.1:1/none`"),
        "{stderr}"
    );

    let out = Command::cargo_bin("example-account")
        .unwrap()
        .current_dir(dir.path())
        .args(["--database-url", "oracle://x", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL scheme"));
}

#[test]
fn default_database_is_an_sqlite_file_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("example-account")
        .unwrap()
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("account.db").is_file());
}

url_test!(async fn users_from_before_the_app_get_a_profile(url) {
    // The seed's pitfall: a user row inserted without the receivers (an import, or from before
    // the app existed) has no profile; Django's save_profile raises for it.
    let app = App::new(&url);
    app.ok(&["list"]); // migrates
    let db = app.db().await;
    db.execute_unprepared(
        "INSERT INTO account_user (username, email, password, date_joined, is_active) \
         VALUES ('legacy', '', 'unusable', CURRENT_TIMESTAMP, TRUE)",
    )
    .await
    .unwrap();
    assert_eq!(count(&db, "account_profile").await, 0);
    let show = app.ok(&["show", "legacy"]);
    assert!(show.starts_with("Profile of legacy"), "{show}");
    app.ok(&["set-dob", "legacy", "1980-01-01"]);
    assert_eq!(count(&db, "account_profile").await, 1);
    assert!(app.ok(&["list"]).contains("legacy  1980-01-01"));
});

#[test]
fn createuser_asks_for_the_password_twice_on_a_terminal() {
    // `script` (util-linux) runs the binary on a pseudo-terminal, as a person at a shell.
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("example-account");
    let on_terminal = |name: &str, typed: &str| {
        Command::new("script")
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://account.db")
            .args([
                "-qec",
                &format!("{} createuser {name}", bin.display()),
                "/dev/null",
            ])
            .write_stdin(typed)
            .output()
            .unwrap()
    };
    let out = on_terminal("carol", "s3cret\ns3cret\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Password: ") && text.contains("Password (again): "),
        "{text}"
    );
    assert!(text.contains("created user carol"), "{text}");

    let out = on_terminal("dave", "s3cret\nother\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("the two passwords differ"), "{text}");

    let list = Command::new(&bin)
        .current_dir(dir.path())
        .env("DATABASE_URL", "sqlite://account.db")
        .arg("list")
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("carol") && !list.contains("dave"), "{list}");
}

// Reliability, round two ----------------------------------------------------------------------

url_test!(async fn uploads_are_limited_in_size_and_must_match_their_extension(url) {
    let app = App::new(&url);
    app.createuser("alice");
    // A 2 GB sparse file with a PNG header: refused before anything is copied.
    let huge = app.write_png("huge.png");
    std::fs::OpenOptions::new().write(true).open(&huge).unwrap().set_len(2 << 30).unwrap();
    app.fails(&["set-photo", "alice", huge.to_str().unwrap()], "", "more than the 5242880 allowed");
    let small = app.write_png("small.png");
    app.fails(
        &["--max-upload-size", "10", "set-photo", "alice", small.to_str().unwrap()],
        "",
        "more than the 10 allowed",
    );
    // A PNG named as a JPEG.
    let disguised = app.write_png("disguised.jpg");
    app.fails(
        &["set-photo", "alice", disguised.to_str().unwrap()],
        "",
        "is a PNG image but its extension says otherwise; name it `.png`",
    );
    assert!(app.media_files().is_empty(), "nothing stored: {:?}", app.media_files());
    app.ok(&["--max-upload-size", "1K", "set-photo", "alice", small.to_str().unwrap()]);
    assert_eq!(app.media_files().len(), 1);
});

url_test!(async fn stored_names_and_printed_values_cannot_forge_output(url) {
    let app = App::new(&url);
    app.createuser("alice");
    app.createuser("bob");
    // A file name with a newline (a fake row) and an escape sequence: stored sanitized.
    let evil = app.write_png("evil\nbob  1990-01-01  x\u{1b}[31m.png");
    let out = app.ok(&["set-photo", "alice", evil.to_str().unwrap()]);
    assert!(!out.contains('\u{1b}'), "{out:?}");
    let list = app.ok(&["list"]);
    assert_eq!(list.lines().count(), 3, "a header and two rows: {list:?}");
    assert!(!list.contains('\u{1b}'), "{list:?}");
    assert!(list.contains("users/"), "{list:?}");
    // Emails are validated, and the error line shows what was refused escaped.
    let run = app.run_with(
        &["createuser", "carol", "--email", "c@x.org\u{1b}[2J", "--password-stdin"],
        "pw\n",
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("invalid email address"), "{:?}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}') && run.stderr.contains("\\u{1b}"), "{:?}", run.stderr);
    app.fails(&["createuser", "dave", "--email", "not-an-address", "--password-stdin"], "pw\n", "invalid email");
    // A value written by something else than this app is printed escaped too.
    let db = app.db().await;
    db.execute_unprepared("UPDATE account_user SET email = 'x@y.org' WHERE username = 'bob'")
        .await
        .unwrap();
    signals_tests::exec(
        &db,
        &format!(
            "UPDATE account_user SET email = {} WHERE username = 'bob'",
            if db.backend() == signals_core::Backend::Postgres {
                "E'bob@x.org\\n\\x1b[2Jfake: line'"
            } else if db.backend() == signals_core::Backend::MySql {
                "CONCAT('bob@x.org', CHAR(10), CHAR(27), '[2Jfake: line')"
            } else {
                "'bob@x.org' || char(10) || char(27) || '[2Jfake: line'"
            }
        ),
    )
    .await;
    let show = app.ok(&["show", "bob"]);
    assert!(!show.contains('\u{1b}'), "{show:?}");
    assert!(show.contains("bob@x.org\\n\\u{1b}[2Jfake: line"), "{show:?}");
});

url_test!(async fn length_limits_are_the_same_on_every_backend(url) {
    let app = App::new(&url);
    // 255 characters: more than the 254 an address may have, refused on every backend alike.
    let long_email = format!("{}@example.org", "a".repeat(242));
    app.fails(
        &["createuser", "alice", "--email", &long_email, "--password-stdin"],
        "pw\n",
        "invalid email address",
    );
    app.createuser("alice");
    // A 250-character file name: stored under a name cut to 100 characters, on every backend.
    let long = app.write_png(&format!("{}.png", "n".repeat(246)));
    app.ok(&["set-photo", "alice", long.to_str().unwrap()]);
    let files = app.media_files();
    assert_eq!(files.len(), 1);
    let name = files[0].rsplit('/').next().unwrap();
    assert!(name.chars().count() <= 100 && name.ends_with(".png"), "{name}");
    let db = app.db().await;
    let stored = scalar_text(&db, "SELECT photo FROM account_profile").await;
    assert!(stored.ends_with(name), "{stored}");
});

/// Eight first runs at once on a new SQLite file: every one migrates (or waits for the one that
/// does) and creates its user.
#[test]
fn concurrent_first_runs_on_a_fresh_file_all_succeed() {
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
        first_runs_at_once(round, &url, dir.path());
    }
}

// Eight first runs at once on a new database of each backend, MariaDB included (whose
// `GET_LOCK(name, -1)` is no lock: sqlx's own migration lock let 7 of 8 runs fail there).
url_test!(async fn concurrent_first_runs_on_a_fresh_database_all_succeed(url) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || first_runs_at_once(0, &url, &path)).await.unwrap();
});

fn first_runs_at_once(round: usize, url: &str, dir: &std::path::Path) {
    let children: Vec<_> = (0..8)
        .map(|i| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("example-account"))
                .current_dir(dir)
                .env("DATABASE_URL", url)
                .args(["createuser", &format!("user{i}"), "--password-stdin"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::cargo_bin("example-account")
        .unwrap()
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 9);
}

url_test!(async fn import_creates_users_with_profiles(url) {
    let app = App::new(&url);
    app.createuser("alice");
    let mut csv = String::new();
    for i in 0..1_500 {
        csv.push_str(&format!("user{i},user{i}@example.com\n"));
    }
    csv.push_str("withpw,pw@example.com,s3cret\n");
    let file = app.dir.path().join("users.csv");
    std::fs::write(&file, csv).unwrap();
    let out = app.ok(&["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 1501 users"), "{out}");
    let db = app.db().await;
    assert_eq!(count(&db, "account_user").await, 1_502);
    assert_eq!(count(&db, "account_profile").await, 1_502, "create_profile ran for every one");
    let with = example_account::User::by_username(&db, "withpw").await.unwrap().unwrap();
    assert!(with.check_password("s3cret"));
    let without = example_account::User::by_username(&db, "user7").await.unwrap().unwrap();
    assert!(without.password.starts_with('!'), "unusable: {}", without.password);
    assert!(!without.check_password(""));
});

url_test!(async fn import_is_all_or_nothing(url) {
    let app = App::new(&url);
    app.createuser("alice");
    let file = app.dir.path().join("users.csv");
    std::fs::write(&file, "bob,b@example.com\nalice,a@example.com\ncarol,c@example.com\n").unwrap();
    app.fails(&["import", file.to_str().unwrap()], "", "`alice` is already taken");
    std::fs::write(&file, "bob,b@example.com\nbad name,x@example.com\n").unwrap();
    app.fails(&["import", file.to_str().unwrap()], "", "line 2: invalid username `bad name`");
    std::fs::write(&file, "bob,not-an-email\n").unwrap();
    app.fails(&["import", file.to_str().unwrap()], "", "line 1: invalid email address");
    let db = app.db().await;
    assert_eq!(count(&db, "account_user").await, 1, "no user of the files was kept");
    assert_eq!(count(&db, "account_profile").await, 1);
});

url_test!(async fn staff_users_for_the_admin(url) {
    let app = App::new(&url);
    let out = app.run_with(&["createuser", "ann", "--staff", "--password-stdin"], "pw\n");
    assert!(out.ok && out.stdout.contains("created staff user ann"), "{}", out.stderr);
    let out = app.run_with(&["createsuperuser", "--username", "root", "--email", "r@example.com", "--password-stdin"], "pw\n");
    assert!(out.ok && out.stdout.contains("created staff user root"), "{}", out.stderr);
    app.createuser("plain");
    app.fails(&["createsuperuser", "--password-stdin"], "pw\n", "pass it as an option");
    app.fails(&["createsuperuser", "--username", "bad name", "--password-stdin"], "pw\n", "invalid username");
    app.fails(&["serve", "--bind", "not-an-address"], "", "is not an address");
    let db = app.db().await;
    for (name, staff) in [("ann", true), ("root", true), ("plain", false)] {
        let user = example_account::User::by_username(&db, name).await.unwrap().unwrap();
        assert_eq!(user.is_staff, staff, "{name}");
    }
    assert_eq!(count(&db, "account_profile").await, 3);
});

url_test!(async fn a_new_user_gets_one_welcome_note_without_a_broker(url) {
    let app = App::new(&url);
    let first = app.ok(&[]);
    assert!(first.contains("welcome note (durable receiver send_welcome) to johndoe"), "{first}");
    app.ok(&[]);
    app.createuser("alice");
    let notes = app.ok(&["notes"]);
    assert_eq!(notes.lines().count(), 2, "one note per new user, none for a resave: {notes}");
    assert!(notes.contains("to alice: Welcome, alice!"), "{notes}");
    let db = app.db().await;
    let s = signals_outbox::stats(&db).await.unwrap();
    // Three events (two creations, one update), all handled in-process; the update writes no note.
    assert_eq!((s.pending, s.handled, s.dead), (0, 3, 0));
    app.fails(&["relay"], "", "`relay` needs NATS");
    app.fails(&["worker"], "", "`worker` needs NATS");
});

/// Processes of a broker test and its stream: killed and deleted when dropped, also when the
/// test fails (CI reuses the broker).
struct Runners {
    children: Vec<std::process::Child>,
    nats: String,
    stream: String,
}

impl Drop for Runners {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (nats, stream) = (self.nats.clone(), self.stream.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = signals_outbox::async_nats::connect(nats).await {
                    let _ = signals_outbox::async_nats::jetstream::new(client)
                        .delete_stream(&stream)
                        .await;
                }
            });
        })
        .join();
    }
}

url_test!(async fn relay_and_two_workers_deliver_the_welcome_notes_through_nats(url) {
    use signals_outbox::async_nats;
    let nats = std::env::var("SIGNALS_TEST_NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".into());
    let client = match async_nats::connect(nats.as_str()).await {
        Ok(c) => c,
        Err(e) if !signals_tests::servers_required() => {
            eprintln!("SKIPPED: no NATS at {nats} ({e})");
            return;
        }
        Err(e) => panic!("NATS required (CI is set) but {nats} failed: {e}"),
    };
    let app = App::new(&url);
    let stream = format!("ACCOUNTS{}", uuid::Uuid::new_v4().simple());
    let spawn = |role: &str| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("example-account"))
            .current_dir(app.dir.path())
            .env("DATABASE_URL", &app.url)
            .env("NATS_URL", &nats)
            .env("NATS_STREAM", &stream)
            .arg(role)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    app.ok(&["list"]); // migrated before the runners start
    let runners = Runners {
        children: vec![spawn("relay"), spawn("worker"), spawn("worker")],
        nats: nats.clone(),
        stream: stream.clone(),
    };
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        let out = Command::cargo_bin("example-account").unwrap()
            .current_dir(app.dir.path())
            .env("DATABASE_URL", &app.url)
            .env("NATS_URL", &nats)
            .args(["createuser", name, "--password-stdin"])
            .write_stdin("pw\n")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let db = app.db().await;
    let start = std::time::Instant::now();
    // Handled and marked published: a worker may handle an event before the relay records
    // that it published it.
    loop {
        let s = signals_outbox::stats(&db).await.unwrap();
        if s.handled >= 5 && s.published >= 5 {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the workers never handled the events: {s:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(runners);
    drop(client);
    let notes = app.ok(&["notes"]);
    assert_eq!(notes.lines().count(), 5, "{notes}");
    let s = signals_outbox::stats(&db).await.unwrap();
    assert_eq!((s.pending, s.published, s.handled), (0, 5, 5));
});

url_test!(async fn outbox_commands_list_replay_and_discard_dead_letters(url) {
    let app = App::new(&url);
    app.ok(&["list"]); // migrated
    assert_eq!(app.ok(&["outbox", "dead"]), "no dead letters\n");
    // An event for a receiver this program does not have: dead-lettered at its first delivery.
    let db = app.db().await;
    db.execute_unprepared(
        "INSERT INTO signals_outbox (event_id, model, receiver, instance_key, part, event, payload, created_at) \
         VALUES ('00000000-0000-4000-8000-00000000000c', 'User', 'send_invoice', 'Some(1)', 0, 'created', '{}', 0)",
    )
    .await
    .unwrap();
    app.ok(&["list"]); // a command drains the outbox before it exits
    let dead = app.ok(&["outbox", "dead"]);
    assert!(
        dead.starts_with("00000000-0000-4000-8000-00000000000c User.send_invoice (created, 1 attempts, failed ")
            && dead.contains("no durable receiver `send_invoice` of `User`"),
        "{dead}"
    );
    assert!(app.ok(&["outbox", "dead", "--receiver", "send_welcome"]).contains("no dead letters"));
    let stats = app.ok(&["outbox", "stats"]);
    assert!(stats.contains("dead 1") && stats.contains("User.send_invoice: pending 0, handled 0, dead 1"), "{stats}");
    // A bare replay or discard names nothing: refused, nothing changed.
    app.fails(&["outbox", "replay"], "", "say --all");
    app.fails(&["outbox", "discard", "--model", "User"], "", "say --all");
    assert_eq!(app.ok(&["outbox", "replay", "--all"]), "replayed 1 dead letters\n");
    // Drained again before the command exited: still no such receiver, dead again.
    assert!(app.ok(&["outbox", "dead"]).contains("send_invoice"));
    assert_eq!(
        app.ok(&["outbox", "discard", "00000000-0000-4000-8000-00000000000c"]),
        "discarded 1 dead letters\n"
    );
    assert_eq!(app.ok(&["outbox", "dead"]), "no dead letters\n");
    assert_eq!(app.ok(&["outbox", "purge-dead", "--older-than", "30"]), "purged 0 dead letters older than 30 days\n");
});

url_test!(async fn a_worker_joins_the_signups_trace_and_serves_its_metrics(url) {
    use signals_outbox::async_nats;
    let nats = std::env::var("SIGNALS_TEST_NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".into());
    let client = match async_nats::connect(nats.as_str()).await {
        Ok(c) => c,
        Err(e) if !signals_tests::servers_required() => {
            eprintln!("SKIPPED: no NATS at {nats} ({e})");
            return;
        }
        Err(e) => panic!("NATS required (CI is set) but {nats} failed: {e}"),
    };
    let app = App::new(&url);
    let stream = format!("ACCOUNTS{}", uuid::Uuid::new_v4().simple());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let worker_log = app.dir.path().join("worker.err");
    let spawn = |args: &[&str], stderr: std::process::Stdio| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("example-account"))
            .current_dir(app.dir.path())
            .env("DATABASE_URL", &app.url)
            .env("NATS_URL", &nats)
            .env("NATS_STREAM", &stream)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    app.ok(&["list"]); // migrated before the runners start
    let runners = Runners {
        children: vec![
            spawn(&["relay"], std::process::Stdio::null()),
            spawn(
                &["--trace", "worker", "--metrics-bind", &bind],
                std::fs::File::create(&worker_log).unwrap().into(),
            ),
        ],
        nats: nats.clone(),
        stream: stream.clone(),
    };
    let out = Command::cargo_bin("example-account").unwrap()
        .current_dir(app.dir.path())
        .env("DATABASE_URL", &app.url)
        .env("NATS_URL", &nats)
        .args(["--trace", "createuser", "traced", "--password-stdin"])
        .write_stdin("pw\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    // The command says its trace.
    let trace = stderr
        .lines()
        .find_map(|l| l.strip_prefix("trace "))
        .unwrap_or_else(|| panic!("the signup's trace: {stderr}"))
        .to_owned();
    let start = std::time::Instant::now();
    let handled = loop {
        let log = std::fs::read_to_string(&worker_log).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.starts_with("span handle ")) {
            break line.to_owned();
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the worker never handled it: {log}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        handled.contains(&format!("trace={trace} ")) && handled.contains("(from another process)"),
        "the worker's span is in the signup's trace {trace}: {handled}"
    );
    let log = std::fs::read_to_string(&worker_log).unwrap();
    assert!(log.contains("User.send_welcome"), "the worker says what it serves: {log}");
    // The metrics, as Prometheus scrapes them (the count follows the span by an instant: the
    // delivery is counted once its transaction has committed).
    let scrape = || {
        use std::io::{Read as _, Write as _};
        let mut conn = std::net::TcpStream::connect(&bind).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text
    };
    let handled = "signals_outbox_handled_total{model=\"User\",receiver=\"send_welcome\"} 1";
    let start = std::time::Instant::now();
    let metrics = loop {
        let metrics = scrape();
        if metrics.contains(handled) || start.elapsed() > std::time::Duration::from_secs(30) {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    drop(runners);
    drop(client);
    assert!(metrics.contains(handled), "{metrics}");
    assert!(metrics.contains("signals_outbox_handling_seconds_count"), "{metrics}");
});
