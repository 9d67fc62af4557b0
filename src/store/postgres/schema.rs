//! The schema of a new database and the migrations of an old one, one instance at a time.

use super::{LOCK_SCHEMA, LOCK_SPACE};

/// The schema of a new database (version 1).
const SCHEMA: &str = include_str!("../../../schema.postgres.sql");

/// Migrations after version 1, in order: `MIGRATIONS[0]` takes a database from version 1 to 2.
/// Shipped entries are never edited; a change is a new entry.
const MIGRATIONS: &[&str] = &[];

/// Creates or migrates the schema in one transaction, under a transaction-scoped advisory
/// lock: instances starting at the same moment wait for each other, and the second finds the
/// work done. (Transaction-scoped, so it works through a pooler in transaction mode too.)
pub(in crate::store) async fn migrate(
    client: &mut tokio_postgres::Client,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_SPACE, &LOCK_SCHEMA],
    )
    .await?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        tx.batch_execute(SCHEMA).await?;
        tx.execute("INSERT INTO schema_version (version) VALUES (1)", &[])
            .await?;
        log::info!("created PostgreSQL schema version 1");
    }
    let version: i64 = tx
        .query_one("SELECT max(version) FROM schema_version", &[])
        .await?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let to = i as i64 + 2;
        if version < to {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&to])
                .await?;
            log::info!("migrated PostgreSQL schema to version {to}");
        }
    }
    tx.commit().await
}
