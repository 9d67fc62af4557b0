//! `leadstream migrate-to-postgres`: copies a SQLite database into an empty PostgreSQL one,
//! in one transaction (an interrupted copy leaves nothing behind, so it can simply be run
//! again). Lead, event and delivery ids are kept (users, notes and history too), and the
//! sequences are set past them, so streams resuming with a `Last-Event-ID` from before the
//! move find their place.
//!
//! A target that already holds leads, jobs, deliveries or sessions is refused: merging two
//! histories would renumber one of them.

use std::path::Path;

use bytes::BytesMut;
use rusqlite::Connection;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use super::postgres::migrate_schema;
use super::sqlite::{open_reader, SCHEMA_VERSION};
use super::PostgresSettings;

/// Rows read from SQLite and written to PostgreSQL per round.
const CHUNK: i64 = 1000;

/// One value on its way from SQLite to PostgreSQL.
#[derive(Debug, Clone)]
enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A table to copy: SQLite's columns, and PostgreSQL's insert of the same values in order.
struct Table {
    name: &'static str,
    columns: &'static str,
    insert: &'static str,
    /// Changes a row before it is written (values derived on the way).
    fixup: fn(&mut Vec<Value>),
}

const TABLES: &[Table] = &[
    Table {
        name: "deliveries",
        columns: "id, received_ms, kind, note, body",
        insert:
            "INSERT INTO deliveries (id, received_ms, kind, note, body) VALUES ($1, $2, $3, $4, $5)",
        fixup: |_| {},
    },
    Table {
        name: "forms",
        columns: "form_id, page_id, name, status, updated_ms, name",
        insert: "INSERT INTO forms (form_id, page_id, name, status, updated_ms, name_folded)
                 VALUES ($1, $2, $3, $4, $5, $6)",
        // The search's folded name, as the PostgreSQL store writes it.
        fixup: |row| {
            if let Some(Value::Text(name)) = row.get_mut(5) {
                *name = name.to_lowercase();
            }
        },
    },
    Table {
        name: "leads",
        columns: "id, leadgen_id, page_id, form_id, ad_id, adgroup_id, campaign_id, created_time, \
                  created_ts, received_at, received_ms, source, name, field_data, search_text, \
                  status, owner, first_contact_ms, updated_ms, version, notes_count",
        insert: "INSERT INTO leads (id, leadgen_id, page_id, form_id, ad_id, adgroup_id,
                                    campaign_id, created_time, created_ts, received_at,
                                    received_ms, source, name, field_data, search_text,
                                    status, owner, first_contact_ms, updated_ms, version,
                                    notes_count)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                         $16, $17, $18, $19, $20, $21)",
        fixup: |_| {},
    },
    // The stream's one id sequence, kept as it is: a dashboard resumes with the same ids.
    Table {
        name: "events",
        columns: "id, lead_id, kind, at_ms",
        insert: "INSERT INTO events (id, lead_id, kind, at_ms) VALUES ($1, $2, $3, $4)",
        fixup: |_| {},
    },
    Table {
        name: "users",
        columns: "name_key, name, password_hash, role, created_ms, updated_ms",
        insert: "INSERT INTO users (name_key, name, password_hash, role, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
        fixup: |_| {},
    },
    Table {
        name: "notes",
        columns: "id, lead_id, author, text, created_ms",
        insert: "INSERT INTO notes (id, lead_id, author, text, created_ms)
                 VALUES ($1, $2, $3, $4, $5)",
        fixup: |_| {},
    },
    Table {
        name: "history",
        columns: "id, lead_id, at_ms, changed_by, field, from_value, to_value",
        insert: "INSERT INTO history (id, lead_id, at_ms, changed_by, field, from_value, to_value)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
        fixup: |_| {},
    },
    Table {
        name: "jobs",
        columns: "leadgen_id, page_id, form_id, ad_id, adgroup_id, webhook_created, delivery_id, \
                  state, attempts, first_seen_ms, next_attempt_ms, last_error, last_error_code, \
                  updated_ms",
        insert: "INSERT INTO jobs (leadgen_id, page_id, form_id, ad_id, adgroup_id,
                                   webhook_created, delivery_id, state, attempts, first_seen_ms,
                                   next_attempt_ms, last_error, last_error_code, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        fixup: |_| {},
    },
    Table {
        name: "destinations",
        columns: "id, kind, url, recipients, secret, forms, events, created_ms, failures, \
                  failing_since_ms, last_error, last_delivered_ms, delivered_count",
        insert: "INSERT INTO destinations (id, kind, url, recipients, secret, forms, events,
                                           created_ms, failures, failing_since_ms, last_error,
                                           last_delivered_ms, delivered_count)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        fixup: |_| {},
    },
    Table {
        name: "forwards",
        columns: "id, destination_id, lead_id, event, webhook_id, payload, state, attempts, \
                  created_ms, next_attempt_ms, updated_ms, last_status, last_error, delivered_ms",
        insert: "INSERT INTO forwards (id, destination_id, lead_id, event, webhook_id, payload,
                                       state, attempts, created_ms, next_attempt_ms, updated_ms,
                                       last_status, last_error, delivered_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        fixup: |_| {},
    },
    Table {
        name: "sessions",
        columns: "token_hash, created_ms, expires_ms, principal, credential_kind, credential_fp, \
                  role",
        insert: "INSERT INTO sessions (token_hash, created_ms, expires_ms, principal,
                                       credential_kind, credential_fp, role)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
        fixup: |_| {},
    },
];

/// Copies everything from the SQLite file at `db` into the PostgreSQL database `to` names;
/// returns what was copied, in words.
pub async fn migrate_to_postgres(db: &Path, to: &PostgresSettings) -> Result<String, String> {
    if !db.is_file() {
        return Err(format!("{}: no such SQLite database", db.display()));
    }
    let sqlite = open_reader(db).map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    let version: i64 = sqlite
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| format!("{} is not a leadstream database: {e}", db.display()))?;
    if version != SCHEMA_VERSION {
        return Err(format!(
            "{} has schema version {version}; this leadstream copies version {SCHEMA_VERSION} (start this \
             version of leadstream on it once, then copy)",
            db.display()
        ));
    }
    let config: tokio_postgres::Config = to
        .url
        .parse()
        .map_err(|e| format!("DATABASE_URL is not a PostgreSQL URL: {e}"))?;
    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let pg = |e: tokio_postgres::Error| format!("PostgreSQL: {}", super::StoreError::from(e));
    migrate_schema(&mut client).await.map_err(pg)?;

    let tx = client.transaction().await.map_err(pg)?;
    let held: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM leads) + (SELECT count(*) FROM jobs)
                  + (SELECT count(*) FROM deliveries) + (SELECT count(*) FROM sessions)",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    if held > 0 {
        return Err(
            "the PostgreSQL database already holds leads, jobs, deliveries or sessions; \
             migrate-to-postgres copies into an empty database only (it may have been copied \
             already: check, or drop and create the database to start over)"
                .into(),
        );
    }
    let mut sqlite = Some(sqlite);
    let mut copied = Vec::new();
    for table in TABLES {
        let mut after = 0i64;
        let mut n = 0u64;
        let insert = tx.prepare(table.insert).await.map_err(pg)?;
        loop {
            let conn = sqlite.take().expect("the SQLite connection");
            let sql = format!(
                "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                table.columns, table.name
            );
            let (conn, rows) = tokio::task::spawn_blocking(move || {
                let rows = read_chunk(&conn, &sql, after);
                (conn, rows)
            })
            .await
            .map_err(|e| format!("reading SQLite failed: {e}"))?;
            sqlite = Some(conn);
            let rows = rows.map_err(|e| format!("reading {} from SQLite: {e}", table.name))?;
            let Some((last, _)) = rows.last() else { break };
            after = *last;
            // Pipelined: the chunk's inserts go down the connection back to back.
            let inserts = rows.into_iter().map(|(_, mut row)| {
                (table.fixup)(&mut row);
                let insert = &insert;
                let tx = &tx;
                async move {
                    let params: Vec<&(dyn ToSql + Sync)> =
                        row.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                    tx.execute(insert, &params).await
                }
            });
            for done in futures_util::future::join_all(inserts).await {
                done.map_err(|e| format!("writing {}: {}", table.name, pg(e)))?;
                n += 1;
            }
        }
        copied.push(format!("{n} {}", table.name));
    }

    // The sync's state: its last outcome, and how far it read each form.
    let conn = sqlite.take().expect("the SQLite connection");
    let state = tokio::task::spawn_blocking(move || -> rusqlite::Result<_> {
        let get = |key: &str| -> rusqlite::Result<Option<String>> {
            use rusqlite::OptionalExtension;
            conn.query_row("SELECT value FROM state WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        };
        Ok((
            get("last_sync")?,
            get("sync_form_watermarks")?,
            get(super::CREDENTIAL_SALT)?,
        ))
    })
    .await
    .map_err(|e| format!("reading SQLite failed: {e}"))?
    .map_err(|e| format!("reading the state from SQLite: {e}"))?;
    // The salt too: sessions are bound to the token's fingerprint, made with it.
    if let Some(salt) = state.2 {
        tx.execute(
            "INSERT INTO state (key, value) VALUES ($1, $2)",
            &[&super::CREDENTIAL_SALT, &salt],
        )
        .await
        .map_err(pg)?;
    }
    if let Some(last_sync) = state.0 {
        tx.execute(
            "INSERT INTO state (key, value) VALUES ('last_sync', $1)",
            &[&last_sync],
        )
        .await
        .map_err(pg)?;
    }
    let marks: std::collections::HashMap<String, i64> = state
        .1
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    for (form_id, started) in &marks {
        tx.execute(
            "INSERT INTO sync_watermarks (form_id, started) VALUES ($1, $2)",
            &[form_id, started],
        )
        .await
        .map_err(pg)?;
    }
    // New rows continue after the copied ids.
    for table in [
        "leads",
        "deliveries",
        "events",
        "notes",
        "history",
        "destinations",
        "forwards",
    ] {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               coalesce((SELECT max(id) FROM {table}), 1),
                               (SELECT max(id) FROM {table}) IS NOT NULL)"
            ),
            &[],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    copied.push(format!("{} sync watermarks", marks.len()));
    Ok(format!(
        "copied {} from {} into PostgreSQL",
        copied.join(", "),
        db.display()
    ))
}

/// Up to [`CHUNK`] rows after `after` (by rowid): the rowid and the values.
fn read_chunk(
    conn: &Connection,
    sql: &str,
    after: i64,
) -> rusqlite::Result<Vec<(i64, Vec<Value>)>> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let rows = stmt
        .query_map(rusqlite::params![after, CHUNK], |r| {
            let values = (1..n)
                .map(|i| {
                    use rusqlite::types::ValueRef;
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(i) => Value::Int(i),
                        ValueRef::Real(f) => Value::Int(f as i64),
                        // PostgreSQL's text cannot hold NUL.
                        ValueRef::Text(t) => {
                            Value::Text(String::from_utf8_lossy(t).replace('\0', "\u{fffd}"))
                        }
                        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((r.get(0)?, values))
        })?
        .collect();
    rows
}
