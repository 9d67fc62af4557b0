//! PostgreSQL, for any number of instances on one database.
//!
//! - `schema`: the tables (`schema.postgres.sql`) and migrations, applied under an advisory
//!   lock so instances starting together take turns;
//! - `writer`: lead saves and webhook deliveries, each queue committed in groups, lead saves
//!   under the one ordering lock that makes ids appear in commit order;
//! - `feed`: LISTEN plus a cursor over `events.id`, the only caller of the [`LeadSink`];
//! - `events`, `team`, `users`: the stream's events read back, changes to leads (each in a
//!   transaction of its own under the ordering lock), and the users;
//! - `erase`: erasures, each a transaction under the ordering lock that writes its `erased`
//!   events for the feed;
//! - `leads`, `jobs`, `forwards`, `shared`: the queries of each family of tables (`forwards`:
//!   forwarding's destinations and deliveries; `shared` holds what the instances share besides
//!   these: sessions, forms, the sync's state, Meta's health);
//! - `turns`: the session locks that elect the periodic sync's leader and let one sync run at
//!   a time.
//!
//! Everything goes through a pool of connections, except the feed's listener and the
//! session locks, which need a connection of their own for as long as they live.

mod erase;
mod events;
mod feed;
mod forwards;
mod jobs;
mod leads;
mod schema;
mod shared;
mod team;
mod turns;
mod users;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio_postgres::NoTls;

use super::{LeadSink, StoreError};
pub(super) use schema::migrate as migrate_schema;
pub use turns::{SyncLeadership, SyncTurn};

/// The first half of every advisory lock key we take: "lead" in ASCII, so our locks are easy
/// to tell apart in `pg_locks`. The second half says which lock.
const LOCK_SPACE: i32 = 0x6c65_6164;
/// Held by the migration of the schema (transaction-scoped).
const LOCK_SCHEMA: i32 = 0;
/// Held by every transaction that inserts leads (transaction-scoped): the ordering lock.
const LOCK_LEADS: i32 = 1;
/// Held by the instance that runs the periodic sync (session-scoped).
const LOCK_SYNC_LEADER: i32 = 2;
/// Held while a sync runs, on whichever instance (session-scoped).
const LOCK_SYNC_RUNNING: i32 = 3;
/// Held while the retention period is applied, so one instance does it (session-scoped).
const LOCK_RETENTION: i32 = 4;

/// Notified (no payload) by every transaction that inserted leads.
const CHANNEL_LEADS: &str = "leadstream_leads";
/// Notified with a session's token hash when it ends.
const CHANNEL_SESSIONS: &str = "leadstream_sessions";

/// Connections in the pool per instance.
const POOL_SIZE: usize = 16;
/// Plans the statements of its transaction for each call, with the tables' size of now. For
/// the few whose best plan depends on it: a plan made once, while a new database's tables were
/// small, goes on scanning them whole as they grow, until autovacuum's next ANALYZE (a minute
/// or more). Under a burst into a fresh database that made the feed's read 6 ms (a full scan
/// of `leads` per read) and a job claim 3 ms (every due job read and sorted), most of the
/// database's CPU; planned afresh they are index scans of a fraction of a millisecond.
const CUSTOM_PLAN: &str = "SET LOCAL plan_cache_mode TO force_custom_plan";
/// How long a query waits for a pooled connection, or for a new one to open.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach PostgreSQL and how this instance takes part.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// `postgres://…` or `host=… dbname=…`.
    pub url: String,
    /// For the connections that must stay the same for long (LISTEN, session locks), when
    /// `url` goes through a pooler in transaction mode; `None`: `url`.
    pub listen_url: Option<String>,
    /// How long a claimed job is this instance's alone; after that another instance may take
    /// it (the instance that claimed it is presumed dead). Longer than a Graph call.
    pub job_lease: Duration,
}

#[derive(Clone)]
pub(super) struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// For the feed's listener and the session locks.
    direct: tokio_postgres::Config,
    /// This instance's name in `jobs.locked_by`: unique per start.
    me: String,
    lease_ms: i64,
    leads: mpsc::UnboundedSender<writer::Queued<writer::SaveLeads>>,
    deliveries: mpsc::UnboundedSender<writer::Queued<writer::StoreDelivery>>,
    session_ends: broadcast::Sender<String>,
    /// Wakes this instance's feed (after a change is committed).
    nudge: Arc<Notify>,
    /// Dropped with the last handle on the store: the feed then stops.
    _stop: watch::Sender<()>,
}

impl Postgres {
    pub async fn connect(
        settings: &PostgresSettings,
        sink: impl LeadSink,
    ) -> Result<Postgres, String> {
        let config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e| format!("DATABASE_URL is not a PostgreSQL URL: {e}"))?;
        let direct = match &settings.listen_url {
            Some(url) => url
                .parse()
                .map_err(|e| format!("DATABASE_LISTEN_URL is not a PostgreSQL URL: {e}"))?,
            None => config.clone(),
        };
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            // Our statements are prepared once per connection and most plans do not depend on
            // the values: without this, PostgreSQL may plan the larger ones (the delivery's)
            // again for every call. The few whose best plan depends on the tables' size opt
            // out with `CUSTOM_PLAN`.
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute("SET plan_cache_mode = force_generic_plan")
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| format!("cannot set up the PostgreSQL pool: {e}"))?;
        {
            let mut client = pool
                .get()
                .await
                .map_err(|e| format!("cannot connect to PostgreSQL: {}", pool_error(e)))?;
            schema::migrate(&mut client).await.map_err(|e| {
                format!(
                    "cannot set up the PostgreSQL schema: {}",
                    StoreError::from(e)
                )
            })?;
        }
        let me = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            crate::config::random_token(4)
        );
        let nudge = Arc::new(Notify::new());
        let (leads, leads_rx) = mpsc::unbounded_channel();
        let (deliveries, deliveries_rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(pool.clone(), leads_rx, nudge.clone()));
        tokio::spawn(writer::run(pool.clone(), deliveries_rx, nudge.clone()));
        let (session_ends, _) = broadcast::channel(256);
        let (stop, stopped) = watch::channel(());
        let feed = feed::Feed::start(
            &pool,
            direct.clone(),
            sink,
            nudge.clone(),
            session_ends.clone(),
            stopped,
        )
        .await
        .map_err(|e| format!("cannot read the leads from PostgreSQL: {e}"))?;
        tokio::spawn(feed.run());
        log::info!("database: PostgreSQL (this instance claims jobs as {me})");
        Ok(Postgres {
            inner: Arc::new(Inner {
                pool,
                direct,
                me,
                lease_ms: settings.job_lease.as_millis() as i64,
                leads,
                deliveries,
                session_ends,
                nudge,
                _stop: stop,
            }),
        })
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    pub fn session_ends(&self) -> broadcast::Receiver<String> {
        self.inner.session_ends.subscribe()
    }
}

/// Runs one query in a transaction of its own, begun with `begin` (`BEGIN` and the settings
/// for this transaction alone), the three sent at once: one round trip, not three.
async fn query_alone(
    c: &tokio_postgres::Client,
    begin: &str,
    stmt: &tokio_postgres::Statement,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let (begun, rows, ended) = tokio::join!(
        c.batch_execute(begin),
        c.query(stmt, params),
        c.batch_execute("COMMIT"),
    );
    begun?;
    let rows = rows?;
    ended?;
    Ok(rows)
}

/// Why no pooled connection could be had, as one error.
fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => unreachable(e),
        other => unreachable(other),
    }
}

/// The database could not be reached, and why.
fn unreachable(why: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("the database is unreachable: {why}"))
}

/// `s` as PostgreSQL's text can hold it: without NUL (Meta's words and form names come from
/// outside and may carry one; SQLite keeps them as they are).
fn text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

/// [`text`] of an optional value.
fn opt_text(s: &Option<String>) -> Option<String> {
    s.as_deref().map(text)
}

/// The machine's name, for `locked_by` (people read it when a job seems stuck).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "leadstream".into())
}

/// Opens a connection of its own (not pooled) and drives it on a task until it closes.
async fn connect_direct(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = tokio::time::timeout(POOL_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| unreachable("timed out connecting"))?
        .map_err(unreachable)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("database connection ended: {e}");
        }
    });
    Ok(client)
}
