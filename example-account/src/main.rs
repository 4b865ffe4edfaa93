//! The seed's Django `account` app as a command line. With no subcommand it runs the demo.
//!
//! ```text
//! cargo run -p example-account                        # the demo, on the SQLite file account.db
//! cargo run -p example-account -- createuser alice --email alice@example.com
//! cargo run -p example-account -- set-dob alice 1990-05-17
//! cargo run -p example-account -- set-email alice alice@example.org
//! cargo run -p example-account -- set-photo alice ~/me.png
//! cargo run -p example-account -- list
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p example-account -- list
//! cargo run -p example-account -- makemigrations add_nickname  # after a model change
//! ```

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use example_account::{
    Account, DEFAULT_DATABASE_URL, Error, User, accounts, delete_user, demo, durable, migrate,
    printable, render_account, render_list, set_dob, set_max_upload_size, set_media_root,
    set_photo, validate_email, validate_username,
};
use signals_core::Db;

/// Users and their profiles, kept in step by model signals (the Django seed app, in Rust).
#[derive(Parser)]
#[command(name = "example-account", version)]
struct Cli {
    /// The database: sqlite://FILE, postgres://... or mysql://...
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    database_url: String,

    /// Where uploaded photos are stored (Django's MEDIA_ROOT).
    #[arg(long, default_value = "media", global = true)]
    media_root: PathBuf,

    /// The largest photo accepted: bytes, or with a K, M or G suffix (KiB, MiB, GiB).
    #[arg(long, default_value = "5M", value_parser = parse_size, global = true)]
    max_upload_size: u64,

    /// NATS with JetStream for the durable receivers (`relay`, `worker`); without it they
    /// run in this process.
    #[arg(long, env = "NATS_URL", global = true)]
    nats_url: Option<String>,

    /// The JetStream stream of `relay` and `worker`; its subjects are the name in lower case,
    /// its workers' consumer `<NAME>-workers`.
    #[arg(long, env = "NATS_STREAM", default_value = "SIGNALS", global = true)]
    nats_stream: String,

    /// Print every span to stderr through OpenTelemetry, with its W3C trace id: a durable
    /// receiver's span (`handle`, in `worker`) is in the trace of the save that made its
    /// event, in whatever process the save ran.
    #[arg(long, global = true)]
    trace: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a user; the password is asked for, or read from stdin with --password-stdin.
    Createuser {
        /// Letters, digits and @ . + - _ (at most 150).
        username: String,
        /// The user's email address.
        #[arg(long, default_value = "")]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The user may log in to the admin site (`serve`).
        #[arg(long)]
        staff: bool,
    },
    /// Create a staff user who may log in to the admin site, asking for the username, email
    /// and password (Django's `createsuperuser`); `--username` and `--password-stdin` for
    /// scripts.
    Createsuperuser {
        /// The username (asked for when missing).
        #[arg(long)]
        username: Option<String>,
        /// The email address (asked for when missing and a terminal is there).
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Serve the admin site (Django's admin for `Profile`) until stopped.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8000")]
        bind: String,
    },
    /// Set a user's date of birth (YYYY-MM-DD).
    SetDob {
        /// The user.
        username: String,
        /// The date, as in 1990-05-17.
        date: String,
    },
    /// Set a user's email address; the user gets a note telling the old address from the new.
    SetEmail {
        /// The user.
        username: String,
        /// The new address ("" for none).
        email: String,
    },
    /// Store an image as a user's photo, replacing the previous one.
    SetPhoto {
        /// The user.
        username: String,
        /// The image file (PNG, JPEG, GIF, WebP, ...).
        file: PathBuf,
    },
    /// Create the users of a CSV file (`username,email[,password]` per line) with their
    /// profiles, in one bulk: all of them or, on an error, none.
    Import {
        /// The CSV file; without a password column users get an unusable password.
        file: PathBuf,
    },
    /// List the profiles: user, date of birth, photo.
    List,
    /// Show the welcome notes the durable receiver `send_welcome` wrote.
    Notes,
    /// Publish the outbox's durable events to NATS JetStream (needs --nats-url) until stopped.
    Relay {
        /// Serve the runners' metrics in Prometheus' format at http://ADDR/metrics.
        #[arg(long, value_name = "ADDR")]
        metrics_bind: Option<String>,
    },
    /// Run durable receivers from NATS JetStream (needs --nats-url) until stopped; start as
    /// many as you like, on any machines.
    Worker {
        /// Serve the runners' metrics in Prometheus' format at http://ADDR/metrics.
        #[arg(long, value_name = "ADDR")]
        metrics_bind: Option<String>,
    },
    /// Show one user and its profile.
    Show {
        /// The user.
        username: String,
    },
    /// Delete a user, its profile and its photo.
    Delete {
        /// The user.
        username: String,
    },
    /// Print the SQL that creates the tables from the models, for this database; the
    /// migrations are checked against the same models at every start.
    Schema,
    /// Write the migrations the models call for, for every backend (Django's
    /// `makemigrations`); a tool for the source tree: it writes into its `migrations/`.
    Makemigrations {
        /// The migration's name (its files are `NNNN_<name>.sql`); by default named after
        /// its change.
        name: Option<String>,
        /// Write nothing; fail when the models and the migrations disagree (for CI).
        #[arg(long)]
        check: bool,
        /// Allow dropping tables and columns and narrowing types.
        #[arg(long)]
        allow_data_loss: bool,
        /// A table renamed, as OLD=NEW (repeatable); its rows are kept.
        #[arg(long, value_name = "OLD=NEW")]
        rename_table: Vec<String>,
        /// A column renamed, as TABLE.OLD=NEW with the model's table (repeatable).
        #[arg(long, value_name = "TABLE.OLD=NEW")]
        rename_column: Vec<String>,
        /// Record that the migrations written by hand make what the models ask for.
        #[arg(long)]
        baseline: bool,
        /// The migrations directory (one directory per backend).
        #[arg(long, default_value = example_account::MIGRATIONS_DIR)]
        dir: PathBuf,
    },
    /// Print the SQL of one migration, as it is applied on this database's backend (Django's
    /// `sqlmigrate`).
    Sqlmigrate {
        /// The migration's version (the number its file name starts with).
        version: i64,
    },
    /// The durable receivers' outbox: counts, dead letters, replays.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Count the events by where they are, in all and per receiver.
    Stats,
    /// List the dead letters: events that failed every attempt, with their last error.
    Dead {
        #[command(flatten)]
        which: Which,
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send dead letters back to the receivers (after a fix): each is handled once, however
    /// many replays run at once.
    Replay {
        #[command(flatten)]
        which: Which,
    },
    /// Give dead letters up: delete them.
    Discard {
        #[command(flatten)]
        which: Which,
    },
    /// Delete the dead letters older than a number of days.
    PurgeDead {
        /// Days.
        #[arg(long, value_name = "DAYS")]
        older_than: u64,
    },
}

/// Which dead letters a command takes.
#[derive(clap::Args)]
struct Which {
    /// Event ids (as `outbox dead` shows them).
    event_ids: Vec<String>,
    /// Only events of this model.
    #[arg(long)]
    model: Option<String>,
    /// Only events of this receiver.
    #[arg(long)]
    receiver: Option<String>,
    /// Every dead letter (with --model or --receiver: every one of them).
    #[arg(long)]
    all: bool,
}

impl Which {
    /// The selection; `changes` (replay, discard) must name events or say `--all`, so that a
    /// bare command changes nothing by accident.
    fn select(&self, changes: bool) -> Result<signals_outbox::dead::Select, Error> {
        use signals_outbox::dead::Select;
        if changes && self.event_ids.is_empty() && !self.all {
            return Err(Error::Config(
                "name the events (as `outbox dead` lists them), or say --all (with --model or \
                 --receiver to narrow it)"
                    .into(),
            ));
        }
        let mut select = if self.event_ids.is_empty() {
            Select::all()
        } else {
            Select::events(self.event_ids.iter().cloned())
        };
        if let Some(model) = &self.model {
            select = select.model(model);
        }
        if let Some(receiver) = &self.receiver {
            select = select.receiver(receiver);
        }
        Ok(select)
    }
}

/// `outbox ..`.
async fn outbox(db: &signals_core::Db, command: &OutboxCommand) -> Result<String, Error> {
    use signals_outbox::dead;
    Ok(match command {
        OutboxCommand::Stats => durable::render_stats(db).await?,
        OutboxCommand::Dead { which, limit } => {
            durable::render_dead(db, &which.select(false)?, *limit).await?
        }
        OutboxCommand::Replay { which } => {
            let n = dead::replay(db, &which.select(true)?).await?;
            format!("replayed {n} dead letters\n")
        }
        OutboxCommand::Discard { which } => {
            let n = dead::discard(db, &which.select(true)?).await?;
            format!("discarded {n} dead letters\n")
        }
        OutboxCommand::PurgeDead { older_than } => {
            let age = std::time::Duration::from_secs(older_than.saturating_mul(86_400));
            let n = dead::purge(db, age).await?;
            format!("purged {n} dead letters older than {older_than} days\n")
        }
    })
}

/// The backend a database URL names, without connecting.
fn backend_of(url: &str) -> Result<signals_core::Backend, Error> {
    use signals_core::Backend;
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        "mysql" | "mariadb" => Ok(Backend::MySql),
        other => Err(Error::Unsupported(other.to_owned())),
    }
}

/// `makemigrations`: plans, checks or writes; asks about renames on a terminal.
fn makemigrations(command: &Command) -> Result<String, Error> {
    use signals_core::makemigrations::MakeMigrations;
    let Command::Makemigrations {
        name,
        check,
        allow_data_loss,
        rename_table,
        rename_column,
        baseline,
        dir,
    } = command
    else {
        unreachable!("called for makemigrations")
    };
    let mut make =
        MakeMigrations::new(dir, &example_account::models()).allow_data_loss(*allow_data_loss);
    if let Some(name) = name {
        make = make.name(name);
    }
    for pair in rename_table {
        let Some((old, new)) = pair.split_once('=') else {
            return Err(Error::Config(format!(
                "`--rename-table {pair}`: write OLD=NEW"
            )));
        };
        make = make.rename_table(old, new);
    }
    for pair in rename_column {
        let parsed = pair
            .split_once('=')
            .and_then(|(old, new)| old.split_once('.').map(|(t, o)| (t, o, new)));
        let Some((table, old, new)) = parsed else {
            return Err(Error::Config(format!(
                "`--rename-column {pair}`: write TABLE.OLD=NEW"
            )));
        };
        make = make.rename_column(table, old, new);
    }
    if std::io::stdin().is_terminal() {
        make = make.ask(|question| {
            eprint!("{question} ");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).is_ok()
                && matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
        });
    }
    if *baseline {
        let files = make.baseline()?;
        return Ok(format!(
            "Recorded the models' state in:\n{}\n",
            list_files(&files)
        ));
    }
    if *check {
        make.check()?;
        return Ok("No changes detected\n".into());
    }
    let plan = make.plan()?;
    let mut out = String::new();
    for note in plan.notes() {
        out.push_str(&format!("note: {note}\n"));
    }
    if plan.is_empty() {
        out.push_str("No changes detected\n");
        return Ok(out);
    }
    out.push_str(&format!("Migration {:04}:\n", plan.version()));
    for change in plan.changes() {
        out.push_str(&format!("  - {change}\n"));
    }
    let files = plan.write()?;
    out.push_str(&format!("Wrote:\n{}\n", list_files(&files)));
    Ok(out)
}

fn list_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| format!("  {}", f.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `1048576`, `512K`, `5M`, `1G` (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let factor: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("unknown unit `{unit}`: use K, M or G")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("`{text}` is not a size, as in 5M"))
}

/// Asks for one line on the terminal (`createsuperuser`).
fn ask(what: &str) -> Result<String, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Password(format!(
            "no terminal to ask the {} on; pass it as an option",
            what.to_lowercase()
        )));
    }
    eprint!("{what}: ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Password(e.to_string()))?;
    Ok(line.trim().to_owned())
}

fn read_password(from_stdin: bool) -> Result<String, Error> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::Password(e.to_string()))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Password(
            "no terminal to ask on; pass --password-stdin and write it to standard input".into(),
        ));
    }
    let first =
        rpassword::prompt_password("Password: ").map_err(|e| Error::Password(e.to_string()))?;
    let again = rpassword::prompt_password("Password (again): ")
        .map_err(|e| Error::Password(e.to_string()))?;
    if first != again {
        return Err(Error::Password("the two passwords differ".into()));
    }
    Ok(first)
}

async fn run(cli: Cli) -> Result<String, Error> {
    set_media_root(&cli.media_root);
    set_max_upload_size(cli.max_upload_size);
    // Check what needs no database first, so bad input changes nothing.
    let mut superuser = None;
    let password = match &cli.command {
        Some(Command::Createuser {
            username,
            email,
            password_stdin,
            ..
        }) => {
            validate_username(username)?;
            validate_email(email)?;
            Some(read_password(*password_stdin)?)
        }
        Some(Command::Createsuperuser {
            username,
            email,
            password_stdin,
        }) => {
            let username = match username {
                Some(name) => name.clone(),
                None => ask("Username")?,
            };
            validate_username(&username)?;
            let email = match email {
                Some(email) => email.clone(),
                None if std::io::stdin().is_terminal() && !*password_stdin => ask("Email address")?,
                None => String::new(),
            };
            validate_email(&email)?;
            let password = read_password(*password_stdin)?;
            superuser = Some((username, email));
            Some(password)
        }
        Some(Command::SetDob { date, .. }) => {
            example_account::parse_date(date)?;
            None
        }
        Some(Command::SetEmail { email, .. }) => {
            validate_email(email)?;
            None
        }
        Some(Command::SetPhoto { file, .. }) => {
            example_account::check_image(file)?;
            None
        }
        _ => None,
    };

    // What needs no database.
    match &cli.command {
        Some(command @ Command::Makemigrations { .. }) => return makemigrations(command),
        Some(Command::Sqlmigrate { version }) => {
            let backend = backend_of(&cli.database_url)?;
            return example_account::sqlmigrate(backend, *version)
                .map(str::to_owned)
                .ok_or_else(|| Error::Config(format!("no migration {version} for {backend}")));
        }
        _ => {}
    }
    let db = Db::connect(&cli.database_url).await?;
    if let Some(Command::Schema) = cli.command {
        let sql = example_account::schema_sql(db.backend());
        db.close().await;
        return Ok(sql);
    }
    migrate(&db).await?;
    let long_running = matches!(
        cli.command,
        Some(Command::Serve { .. } | Command::Relay { .. } | Command::Worker { .. })
    );
    let show_notes = matches!(
        cli.command,
        None | Some(Command::Createuser { .. } | Command::Createsuperuser { .. })
    );
    let out = match cli.command {
        None => {
            let mut out = String::new();
            demo(&db, &mut out).await?;
            out
        }
        Some(Command::Createuser {
            username,
            email,
            staff,
            ..
        }) => {
            let password = password.unwrap_or_default();
            let user = if staff {
                User::create_staff_user(&db, &username, &email, &password).await?
            } else {
                User::create_user(&db, &username, &email, &password).await?
            };
            format!(
                "created {}user {} (id {}); its profile was created by create_profile\n",
                if staff { "staff " } else { "" },
                user.username,
                user.id.unwrap_or_default()
            )
        }
        Some(Command::Createsuperuser { .. }) => {
            let (username, email) = superuser.unwrap_or_default();
            let password = password.unwrap_or_default();
            let user = User::create_staff_user(&db, &username, &email, &password).await?;
            format!(
                "created staff user {} (id {}); log in at `serve`'s /admin/\n",
                user.username,
                user.id.unwrap_or_default()
            )
        }
        Some(Command::Serve { bind }) => {
            // Without a broker, the durable receivers run beside the admin.
            let running = match &cli.nats_url {
                None => Some(durable::spawn(&db).await?),
                Some(_) => None,
            };
            example_account::admin::serve(db.clone(), &bind).await?;
            if let Some(running) = running {
                running.stop().await.map_err(durable::error)?;
            }
            String::new()
        }
        Some(Command::Relay { metrics_bind }) => {
            if let Some(bind) = metrics_bind {
                let handle = example_account::observe::install_metrics()?;
                example_account::observe::serve_metrics(&bind, handle).await?;
            }
            durable::relay(&db, cli.nats_url.as_deref(), &cli.nats_stream).await?;
            String::new()
        }
        Some(Command::Worker { metrics_bind }) => {
            if let Some(bind) = metrics_bind {
                let handle = example_account::observe::install_metrics()?;
                example_account::observe::serve_metrics(&bind, handle).await?;
            }
            durable::worker(&db, cli.nats_url.as_deref(), &cli.nats_stream).await?;
            String::new()
        }
        Some(Command::Notes) => example_account::render_notes(&db).await?,
        Some(Command::Outbox { command }) => outbox(&db, &command).await?,
        Some(Command::SetDob { username, date }) => {
            let account = set_dob(&db, &username, &date).await?;
            format!(
                "date of birth of {} set to {}\n",
                account.user.username,
                account
                    .profile
                    .date_of_birth
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            )
        }
        Some(Command::SetEmail { username, email }) => {
            let user = example_account::set_email(&db, &username, &email).await?;
            format!("email of {} set to {}\n", user.username, user.email)
        }
        Some(Command::SetPhoto { username, file }) => {
            let account = set_photo(&db, &username, &file).await?;
            format!(
                "photo of {} stored as {}\n",
                printable(&account.user.username),
                printable(&account.profile.photo)
            )
        }
        Some(Command::Import { file }) => {
            let mut users = example_account::read_users(&file)?;
            let progress = indicatif::ProgressBar::new(users.len() as u64);
            if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let n = example_account::import_users(&db, &mut users, &progress).await?;
            format!("imported {n} users; their profiles were created by create_profile\n")
        }
        Some(Command::List) => render_list(&accounts(&db).await?),
        Some(Command::Show { username }) => render_account(&Account::load(&db, &username).await?),
        Some(Command::Delete { username }) => {
            let rows = delete_user(&db, &username).await?;
            format!("deleted {username} and its profile ({rows} rows)\n")
        }
        Some(Command::Schema | Command::Makemigrations { .. } | Command::Sqlmigrate { .. }) => {
            unreachable!("done before migrating")
        }
    };
    let out = if cli.nats_url.is_none() && !long_running {
        // No broker: what this command committed is handled before it exits.
        let mut out = out;
        let handled = durable::drain(&db).await?;
        if show_notes && handled > 0 {
            out.push_str(&example_account::render_new_notes(&db).await?);
        }
        out
    } else {
        out
    };
    db.close().await;
    Ok(out)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The long-running commands log to stderr (a server error's cause, a failed connection);
    // `--trace` prints the spans. Dropped at exit, after the command: the spans are flushed.
    let log = matches!(
        cli.command,
        Some(Command::Serve { .. } | Command::Relay { .. } | Command::Worker { .. })
    );
    let _observed = example_account::observe::install(log, cli.trace);
    // A one-off command is one trace, from its saves to the durable receivers they reach in
    // a worker; a long-running one starts a trace per request or event instead.
    let command = if log {
        tracing::Span::none()
    } else {
        let name = std::env::args()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .unwrap_or_default();
        tracing::info_span!("example-account", command = %printable(&name))
    };
    // The trace's id, said whether or not its spans reach an exporter.
    if cli.trace && !log {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let trace = command.context().span().span_context().trace_id();
        eprintln!("trace {trace}");
    }
    match tracing::Instrument::instrument(run(cli), command).await {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            // Values from the database or the command line may hold control characters.
            let text: Vec<String> = err.to_string().lines().map(printable).collect();
            eprintln!("error: {}", text.join("\n"));
            ExitCode::FAILURE
        }
    }
}
