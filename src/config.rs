//! Settings: command-line flag, else environment variable, else `.env` in the working
//! directory, else the default (docs/settings.md).
//!
//! `.env` is loaded into the environment *before* clap reads it, without overriding variables
//! that are already set, which yields exactly that precedence.
//!
//! An empty value counts as unset wherever it comes from (`META_APP_SECRET=` in the
//! environment or in `.env`, `--meta-app-secret=` on the command line): the next source is
//! asked, and in the end the default applies. An empty secret must never become a key: anyone
//! can compute HMAC("", body). clap would take `""` as a value, so empty values are taken out
//! of the environment and the arguments before it looks ([`Cli::parse_with_empty_unset`]),
//! for every setting it knows, present and future.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::store::{Database, PostgresSettings};
use unset::{drop_empty_flags, forget_empty_environment, given, load_dotenv};

mod limits;
mod mail;
mod operations;
mod unset;
mod users;
pub use limits::{LimitArgs, Limits};
pub use mail::MailArgs;
pub use users::{UsersArgs, UsersCommand};

/// A secret string whose `Debug` never shows the value, so a `{:?}` of the settings in a log
/// line cannot leak a token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com/v25.0";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DB: &str = "./leads.db";

impl AsRef<str> for Secret {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// What clap parses; turned into [`Settings`] by [`Cli::into_settings`], which checks the
/// combinations clap cannot express.
#[derive(Debug, Parser)]
#[command(
    name = "leadstream",
    version,
    about = "Receives Meta Lead Ads webhooks, keeps every lead in SQLite (or PostgreSQL, for several instances) and shows them live.",
    after_help = "Every setting can also come from the environment or from a .env file in the \
                  working directory; an empty value counts as unset. With no META_* settings at \
                  all, leadstream starts in demo mode."
)]
pub struct Cli {
    /// Without a command, leadstream serves.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to serve on; port 0 picks a free one (the bound address is logged).
    #[arg(long, env = "LISTEN_ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// SQLite file (the server creates it with schema.sql on first start).
    #[arg(long, env = "LEADS_DB", default_value = DEFAULT_DB, global = true)]
    pub db: String,

    /// PostgreSQL (`postgres://…` or `host=… dbname=…`): when set, the store is PostgreSQL and
    /// any number of instances may share it.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<Secret>,

    /// A direct PostgreSQL URL for LISTEN and the sync's locks, when DATABASE_URL goes through
    /// a pooler in transaction mode (PgBouncer); default: DATABASE_URL.
    #[arg(
        long = "database-listen-url",
        env = "DATABASE_LISTEN_URL",
        hide_env_values = true
    )]
    pub database_listen_url: Option<Secret>,

    /// How long a job claimed by an instance stays its own (milliseconds; default: the Graph
    /// timeout plus 30 s). Only tests shorten it.
    #[arg(long = "job-lease-ms", env = "LEADSTREAM_JOB_LEASE_MS", hide = true)]
    pub job_lease_ms: Option<u64>,

    /// HMAC key for X-Hub-Signature-256; also signs appsecret_proof.
    #[arg(
        long = "meta-app-secret",
        env = "META_APP_SECRET",
        hide_env_values = true
    )]
    pub app_secret: Option<Secret>,

    /// Token Meta echoes in the subscription handshake.
    #[arg(
        long = "meta-webhook-verify-token",
        env = "META_WEBHOOK_VERIFY_TOKEN",
        hide_env_values = true
    )]
    pub verify_token: Option<Secret>,

    /// Long-lived Page (or system-user) token for Graph reads.
    #[arg(
        long = "meta-page-access-token",
        env = "META_PAGE_ACCESS_TOKEN",
        hide_env_values = true
    )]
    pub page_access_token: Option<Secret>,

    /// Page id(s) to sync with Meta, comma-separated.
    #[arg(long = "meta-page-id", env = "META_PAGE_ID")]
    pub page_ids: Option<String>,

    /// Graph base URL including the version.
    #[arg(long = "meta-graph-url", env = "META_GRAPH_URL", default_value = DEFAULT_GRAPH_URL)]
    pub graph_url: String,

    /// Secret that opens the dashboard and the API; random per start when unset (printed).
    #[arg(
        long = "dashboard-token",
        env = "DASHBOARD_TOKEN",
        hide_env_values = true
    )]
    pub dashboard_token: Option<Secret>,

    /// A second secret that opens `GET /metrics` only (for a Prometheus server that should not
    /// read leads); the dashboard token opens it too.
    #[arg(long = "metrics-token", env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Erase leads received more than this many days ago, once a day; unset keeps them.
    #[arg(long = "leads-retention-days", env = "LEADS_RETENTION_DAYS")]
    pub leads_retention_days: Option<String>,

    /// Run with a built-in simulated Meta that posts signed demo leads.
    #[arg(long, env = "LEADSTREAM_DEMO", value_parser = parse_flag, num_args = 0..=1, default_missing_value = "1", default_value = "0")]
    pub demo: bool,

    /// The public https URL when behind a reverse proxy; makes the session cookie `Secure`.
    #[arg(long = "public-url", env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// A header in which a reverse proxy on this machine passes the client's address, e.g.
    /// X-Forwarded-For or X-Real-IP; believed only on connections from loopback. Wrong tokens
    /// are then counted per client rather than all against the proxy.
    #[arg(long = "trust-proxy-header", env = "TRUST_PROXY_HEADER")]
    pub trust_proxy_header: Option<String>,

    #[command(flatten)]
    pub mail: MailArgs,

    #[command(flatten, next_help_heading = "Connections and timeouts")]
    pub limits: LimitArgs,
}

/// What leadstream can do besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy the database to FILE while the server runs: one consistent instant, checked with
    /// PRAGMA integrity_check, written as FILE.tmp and renamed when complete.
    Backup(BackupArgs),
    /// Copy a SQLite database (--db) into an empty PostgreSQL database (--database-url):
    /// leads with their ids, jobs, dead letters, deliveries, forms, the sync's state,
    /// sessions and forwarding's destinations with their deliveries. Refuses a database that already holds any of these.
    MigrateToPostgres,
    /// Manage the people who log in to the dashboard (on the database --db or
    /// --database-url names).
    Users(UsersArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Where the copy goes.
    pub file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// What the command line asks for, checked.
#[derive(Debug)]
pub enum Invocation {
    Serve(Box<Settings>),
    /// `leadstream backup FILE` of the database at `db`.
    Backup {
        db: PathBuf,
        args: BackupArgs,
    },
    /// `leadstream migrate-to-postgres`: the SQLite file `db` into the database `to`.
    MigrateToPostgres {
        db: PathBuf,
        to: PostgresSettings,
    },
    /// `leadstream users …` on `database`.
    Users {
        database: Database,
        command: UsersCommand,
    },
}

impl Invocation {
    /// Reads `.env` (if any), then flags and environment.
    pub fn from_env_and_args() -> Result<Invocation, String> {
        load_dotenv()?;
        let cli = Cli::parse_with_empty_unset(std::env::args_os()).unwrap_or_else(|e| e.exit());
        cli.into_invocation()
    }
}

fn parse_flag(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("expected 1 or 0, not {other:?}")),
    }
}

/// Knobs that are not user settings but that tests and the load generator turn.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// First retry delay of a failed Graph call; doubles each try (about 1 s; docs/settings.md).
    pub retry_base: Duration,
    /// Longest wait between two tries of one job (5 minutes; docs/settings.md).
    pub retry_cap: Duration,
    /// How long a job is retried before it becomes a dead letter (48 hours; docs/settings.md).
    pub retry_for: Duration,
    /// Graph lead fetches in flight at once.
    pub worker_concurrency: usize,
    /// Capacity of the in-memory fan-out; a client further behind is caught up from the database.
    pub broadcast_capacity: usize,
    /// A lagging client this many leads behind gets a `refresh` event instead of a replay.
    pub max_replay: i64,
    /// Comment line interval on idle streams (at least every 15 s; docs/stream.md).
    pub keepalive: Duration,
    /// Periodic catch-up sync; `None` turns it off (every 15 minutes; docs/settings.md).
    pub sync_every: Option<Duration>,
    /// Sync at start-up.
    pub sync_at_start: bool,
    /// Demo: time between simulated webhook deliveries.
    pub demo_every: Duration,
    /// Timeout of one Graph request.
    pub graph_timeout: Duration,
    /// The most pages of one listing (a page's forms, a form's leads) one sync reads: 2,000
    /// pages of 100 leads (docs/settings.md).
    pub sync_max_pages: usize,
    /// Wrong dashboard tokens allowed per client address per `guess_window`, before further
    /// attempts from it are refused for the rest of the window (10 a minute; docs/settings.md).
    pub guess_limit: u32,
    pub guess_window: Duration,
    /// How long a dashboard session lasts (30 days; docs/settings.md).
    pub session_ttl: Duration,
    /// With PostgreSQL: how long a claimed job stays this instance's; `None`: the Graph
    /// timeout plus 30 s, so a claim never runs out under a call still waiting for Graph.
    pub job_lease: Option<Duration>,
    /// Deadline of one forwarding try, a webhook's or a mail's (10 s; docs/settings.md).
    pub forward_timeout: Duration,
    /// Leads received longer ago than this are erased; `None` keeps them (LEADS_RETENTION_DAYS).
    pub retention: Option<Duration>,
    /// How often the retention period is applied (daily).
    pub retention_every: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
            retry_for: Duration::from_secs(48 * 3600),
            worker_concurrency: 8,
            broadcast_capacity: 1024,
            max_replay: 10_000,
            keepalive: Duration::from_secs(15),
            sync_every: Some(Duration::from_secs(15 * 60)),
            sync_at_start: true,
            demo_every: Duration::from_secs(4),
            graph_timeout: Duration::from_secs(20),
            sync_max_pages: 2_000,
            guess_limit: crate::auth::GUESS_LIMIT,
            guess_window: crate::auth::GUESS_WINDOW,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            job_lease: None,
            forward_timeout: Duration::from_secs(10),
            retention: None,
            retention_every: Duration::from_secs(24 * 3600),
        }
    }
}

/// Meta credentials, all present (a half-configured app is refused at start-up).
#[derive(Debug, Clone)]
pub struct MetaSettings {
    pub app_secret: Secret,
    pub verify_token: Secret,
    pub page_access_token: Secret,
    pub page_ids: Vec<String>,
    pub graph_url: String,
}

/// Everything the app needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub db: PathBuf,
    /// PostgreSQL instead of the SQLite file `db` (several instances may share it).
    pub database_url: Option<Secret>,
    /// For LISTEN and session locks, when `database_url` goes through a pooler.
    pub database_listen_url: Option<Secret>,
    /// `None` in demo mode: the demo makes up its own secrets and points Graph at itself.
    pub meta: Option<MetaSettings>,
    pub dashboard_token: Secret,
    /// Opens `GET /metrics` besides the dashboard token.
    pub metrics_token: Option<Secret>,
    /// True when the dashboard token was generated at start (so it is printed in the URL).
    pub token_generated: bool,
    pub demo: bool,
    /// Why demo mode is on, for the one start-up line that says so.
    pub demo_reason: Option<&'static str>,
    pub public_url: Option<String>,
    /// The header a local reverse proxy passes the client's address in (lower case).
    pub trust_proxy_header: Option<String>,
    /// E-mail destinations' SMTP server and sender; both or neither.
    pub smtp: Option<(Secret, String)>,
    /// What a client may hold: connections, timeouts, body bytes.
    pub limits: Limits,
    pub tuning: Tuning,
}

impl Settings {
    /// The database these settings name.
    pub fn database(&self) -> Database {
        match &self.database_url {
            Some(url) => Database::Postgres(postgres_settings(
                url,
                self.database_listen_url.as_ref(),
                &self.tuning,
            )),
            None => Database::Sqlite(self.db.clone()),
        }
    }

    /// `true` when the session cookie must carry `Secure`.
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
    }
}

impl Cli {
    /// Parses `args` and the environment, an empty value counting as unset: empty variables
    /// of the settings are removed from the environment, and `--name=` or `--name ""` from
    /// the arguments, so clap falls through to the next source and the default.
    pub fn parse_with_empty_unset<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        forget_empty_environment(&Cli::command());
        // Built again: clap reads the environment when it builds the command.
        let mut command = Cli::command();
        let args = drop_empty_flags(&command, args.into_iter().map(Into::into).collect());
        Cli::from_arg_matches_mut(&mut command.try_get_matches_from_mut(args)?)
    }

    /// A command, or the server's settings. A command needs only the settings it uses: a
    /// half-configured Meta app does not stop a backup.
    pub fn into_invocation(mut self) -> Result<Invocation, String> {
        match self.command.take() {
            // It copies a SQLite file: with PostgreSQL it would copy the wrong database, or none.
            Some(Command::Backup(_)) if given(self.database_url.as_ref()).is_some() => Err(
                "backup copies the SQLite database; with DATABASE_URL set, back up PostgreSQL \
                 with pg_dump (README, \"Backups\")"
                    .into(),
            ),
            Some(Command::Backup(args)) => Ok(Invocation::Backup {
                db: self.db_path(),
                args,
            }),
            Some(Command::MigrateToPostgres) => {
                let Some(url) = given(self.database_url.take()) else {
                    return Err(
                        "migrate-to-postgres needs --database-url (or DATABASE_URL): the database to copy into"
                            .into(),
                    );
                };
                let listen = given(self.database_listen_url.take());
                Ok(Invocation::MigrateToPostgres {
                    to: postgres_settings(&url, listen.as_ref(), &Tuning::default()),
                    db: self.db_path(),
                })
            }
            Some(Command::Users(args)) => {
                let database = match given(self.database_url.take()) {
                    Some(url) => Database::Postgres(postgres_settings(
                        &url,
                        given(self.database_listen_url.take()).as_ref(),
                        &Tuning::default(),
                    )),
                    None => Database::Sqlite(self.db_path()),
                };
                Ok(Invocation::Users {
                    database,
                    command: args.command,
                })
            }
            None => Ok(Invocation::Serve(Box::new(self.into_settings()?))),
        }
    }

    fn db_path(&self) -> PathBuf {
        PathBuf::from(given(Some(self.db.as_str())).unwrap_or(DEFAULT_DB))
    }

    pub fn into_settings(self) -> Result<Settings, String> {
        let db = self.db_path();
        let app_secret = given(self.app_secret);
        let verify_token = given(self.verify_token);
        let page_access_token = given(self.page_access_token);
        let page_ids = given(self.page_ids);
        let secrets = [
            ("META_APP_SECRET", app_secret.is_some()),
            ("META_WEBHOOK_VERIFY_TOKEN", verify_token.is_some()),
            ("META_PAGE_ACCESS_TOKEN", page_access_token.is_some()),
        ];
        let any_meta = secrets.iter().any(|(_, set)| *set) || page_ids.is_some();
        let database_url = given(self.database_url);
        let database_listen_url = given(self.database_listen_url);
        // The demo's simulated Meta is for one machine: it would post its leads to every
        // instance sharing the database.
        if database_url.is_some() {
            if self.demo {
                return Err(
                    "--demo runs on SQLite only: drop --database-url (DATABASE_URL) to try the demo"
                        .into(),
                );
            }
            if !any_meta {
                return Err(
                    "a database URL needs a Meta app: set the META_* settings (see .env.example); \
                            demo mode runs on SQLite only"
                        .into(),
                );
            }
        }
        let (meta, demo_reason) = if self.demo {
            (None, Some("--demo was given"))
        } else if !any_meta {
            (None, Some("no META_* settings were found"))
        } else {
            if let Some((name, _)) = secrets.iter().find(|(_, set)| !*set) {
                return Err(format!(
                    "{name} is required when a Meta app is configured (see .env.example), \
                     or start with --demo to try leadstream without one"
                ));
            }
            let page_ids = parse_page_ids(page_ids.as_deref().unwrap_or(""))?;
            let graph_url = given(Some(self.graph_url.as_str()))
                .unwrap_or(DEFAULT_GRAPH_URL)
                .trim_end_matches('/')
                .to_string();
            url::Url::parse(&graph_url)
                .map_err(|e| format!("META_GRAPH_URL is not a URL ({e}): {graph_url:?}"))?;
            (
                Some(MetaSettings {
                    app_secret: app_secret.expect("checked above"),
                    verify_token: verify_token.expect("checked above"),
                    page_access_token: page_access_token.expect("checked above"),
                    page_ids,
                    graph_url,
                }),
                None,
            )
        };
        let (dashboard_token, token_generated) = match given(self.dashboard_token) {
            Some(t) if t.expose().len() >= 8 => (t, false),
            Some(_) => return Err("DASHBOARD_TOKEN must be at least 8 characters long".into()),
            None => (Secret::new(random_token(18)), true),
        };
        let public_url = given(self.public_url);
        if let Some(u) = &public_url {
            url::Url::parse(u).map_err(|e| format!("PUBLIC_URL is not a URL ({e}): {u:?}"))?;
        }
        let trust_proxy_header = given(self.trust_proxy_header)
            .map(|h| parse_header_name(&h))
            .transpose()?;
        let smtp = self.mail.into_smtp()?;
        let listen = given(Some(self.listen.as_str())).unwrap_or(DEFAULT_LISTEN);
        let listen = listen.trim().parse::<SocketAddr>().map_err(|e| {
            format!("LISTEN_ADDR must be an address and port like 127.0.0.1:8080 ({e}): {listen:?}")
        })?;
        let limits = self.limits.into_limits()?;
        let metrics_token = operations::metrics_token(given(self.metrics_token))?;
        let retention = operations::retention(given(self.leads_retention_days))?;
        let tuning = Tuning {
            job_lease: self.job_lease_ms.map(Duration::from_millis),
            retention,
            ..Tuning::default()
        };
        Ok(Settings {
            listen,
            db,
            database_url,
            database_listen_url,
            demo: meta.is_none(),
            meta,
            dashboard_token,
            metrics_token,
            token_generated,
            demo_reason,
            public_url,
            trust_proxy_header,
            smtp,
            limits,
            tuning,
        })
    }
}

/// PostgreSQL's settings from the URLs and the tuning.
fn postgres_settings(url: &Secret, listen: Option<&Secret>, tuning: &Tuning) -> PostgresSettings {
    PostgresSettings {
        url: url.expose().to_string(),
        listen_url: listen.map(|u| u.expose().to_string()),
        job_lease: tuning
            .job_lease
            .unwrap_or(tuning.graph_timeout + Duration::from_secs(30)),
    }
}

/// A header name as HTTP allows it (letters, digits and `-` in practice), lower case.
fn parse_header_name(s: &str) -> Result<String, String> {
    let name = s.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "TRUST_PROXY_HEADER must be a header name such as X-Forwarded-For, not {s:?}"
        ))
    }
}

/// Page ids are used as URL path segments, so only digits are accepted.
fn parse_page_ids(s: &str) -> Result<Vec<String>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            if crate::model::is_meta_id(p) {
                Ok(p.to_string())
            } else {
                Err(format!(
                    "META_PAGE_ID must be page ids (digits), comma-separated; got {p:?}"
                ))
            }
        })
        .collect()
}

/// `http://HOST:PORT` of a server listening on `addr`, as a browser on this machine reaches
/// it: an unspecified address (`0.0.0.0`, `::`) becomes 127.0.0.1, IPv6 gets its brackets.
pub fn base_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    format!("http://{host}:{}", addr.port())
}

/// A URL-safe random token of `bytes` random bytes (hex encoded).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex::encode(buf)
}

#[cfg(test)]
mod tests;
