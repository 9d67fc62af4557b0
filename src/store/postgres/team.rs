//! Changes to a lead, each committed in a transaction of its own with its `updated` event,
//! under the ordering lock (so event ids become visible in the order the feed reads them),
//! and a lead read back with its notes and history.

use tokio_postgres::Transaction;

use super::forwards::queue_lead_event;
use super::leads::lead_from_row;
use super::{Postgres, CHANNEL_LEADS, LOCK_LEADS, LOCK_SPACE};
use crate::model::forward::EventType;
use crate::model::{
    format_unix_ms, now_ms, Changed, Edit, EventKind, HistoryEntry, Lead, LeadChange, LeadDetail,
    Note, TOKEN_USER,
};
use crate::store::changes::plan;
use crate::store::rows::{LEAD_COLUMNS, LEAD_FROM};
use crate::store::StoreError;

impl Postgres {
    pub async fn change_lead(&self, change: LeadChange) -> Result<Changed, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        let outcome = change_lead(&tx, &change, now).await?;
        if let Changed::Done { lead, .. } = &outcome {
            // Forwarded as `lead.updated`, in the change's own transaction: a change is never
            // committed without its deliveries.
            queue_lead_event(
                &tx,
                EventType::LeadUpdated,
                std::slice::from_ref(lead),
                |_| format_unix_ms(now),
            )
            .await?;
            // Delivered at COMMIT: the feeds of every instance read the event back.
            tx.batch_execute(&format!("NOTIFY {CHANNEL_LEADS}")).await?;
            tx.commit().await?;
            self.inner.nudge.notify_one();
        } else {
            tx.rollback().await?;
        }
        Ok(outcome)
    }

    pub async fn lead_detail(&self, id: i64) -> Result<Option<LeadDetail>, StoreError> {
        let c = self.client().await?;
        let Some(lead) = read_lead(&**c, id).await? else {
            return Ok(None);
        };
        let notes = c
            .query(
                "SELECT id, author, text, created_ms FROM notes WHERE lead_id = $1 ORDER BY id",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| Note {
                id: r.get(0),
                author: r.get(1),
                text: r.get(2),
                created_at: format_unix_ms(r.get(3)),
            })
            .collect();
        let history = c
            .query(
                "SELECT at_ms, changed_by, field, from_value, to_value FROM history
                 WHERE lead_id = $1 ORDER BY id",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| HistoryEntry {
                at: format_unix_ms(r.get(0)),
                by: r.get(1),
                field: r.get(2),
                from: r.get(3),
                to: r.get(4),
            })
            .collect();
        Ok(Some(LeadDetail {
            lead,
            notes,
            history,
        }))
    }
}

async fn read_lead(
    c: &impl tokio_postgres::GenericClient,
    id: i64,
) -> Result<Option<Lead>, StoreError> {
    let row = c
        .query_opt(
            &format!("SELECT {LEAD_COLUMNS} {LEAD_FROM} WHERE l.id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(lead_from_row).transpose()
}

/// The one place a change to a lead is written on PostgreSQL (the transaction commits it):
/// the caller adds the change's forwarding deliveries to the same transaction.
async fn change_lead(
    tx: &Transaction<'_>,
    change: &LeadChange,
    now: i64,
) -> Result<Changed, StoreError> {
    // Every transaction that writes events takes the ordering lock, so ids commit in order.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_SPACE, &LOCK_LEADS],
    )
    .await?;
    let Some(lead) = read_lead(tx, change.lead_id).await? else {
        return Ok(Changed::NoSuchLead);
    };
    if change.version.is_some_and(|v| v != lead.version) {
        return Ok(Changed::Stale(lead));
    }
    let owner = match &change.edit {
        Edit::Set {
            owner: Some(Some(name)),
            ..
        } => match user_name(tx, name).await? {
            Some(known) => Some(Some(known)),
            None => return Ok(Changed::NoSuchUser(name.clone())),
        },
        Edit::Set {
            owner: Some(None), ..
        } => Some(None),
        _ => None,
    };
    let plan = plan(&lead, &change.edit, owner);
    if plan.is_empty() {
        return Ok(Changed::Unchanged(lead));
    }
    let id = change.lead_id;
    let note = match &plan.note {
        Some(text) => {
            let text = super::text(text);
            let row = tx
                .query_one(
                    "INSERT INTO notes (lead_id, author, text, created_ms) VALUES ($1, $2, $3, $4)
                     RETURNING id",
                    &[&id, &change.by, &text, &now],
                )
                .await?;
            Some(Note {
                id: row.get(0),
                author: change.by.clone(),
                text,
                created_at: format_unix_ms(now),
            })
        }
        None => None,
    };
    for (field, from, to) in &plan.history {
        tx.execute(
            "INSERT INTO history (lead_id, at_ms, changed_by, field, from_value, to_value)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&id, &now, &change.by, field, from, to],
        )
        .await?;
    }
    tx.execute(
        "UPDATE leads SET status = $2, owner = $3, updated_ms = $4, version = version + 1,
                          notes_count = notes_count + $5,
                          first_contact_ms = CASE WHEN $6 THEN coalesce(first_contact_ms, $4)
                                                  ELSE first_contact_ms END
         WHERE id = $1",
        &[
            &id,
            &plan.status.as_str(),
            &plan.owner,
            &now,
            &i64::from(note.is_some()),
            &plan.first_contact,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO events (lead_id, kind, at_ms) VALUES ($1, $2, $3)",
        &[&id, &EventKind::Updated.as_str(), &now],
    )
    .await?;
    let lead = read_lead(tx, id)
        .await?
        .ok_or_else(|| StoreError::Commit("the lead vanished while it was changed".into()))?;
    Ok(Changed::Done { lead, note })
}

/// `name` as the users table spells it, or the token's user; `None` for nobody.
async fn user_name(tx: &Transaction<'_>, name: &str) -> Result<Option<String>, StoreError> {
    if name.eq_ignore_ascii_case(TOKEN_USER) {
        return Ok(Some(TOKEN_USER.to_string()));
    }
    Ok(tx
        .query_opt(
            "SELECT name FROM users WHERE name_key = $1",
            &[&name.to_ascii_lowercase()],
        )
        .await?
        .map(|r| r.get(0)))
}
