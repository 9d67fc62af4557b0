//! Changes to a lead, committed by the writer in one transaction with their `updated` event
//! (see `events` for where an event is written), and a lead read back with its notes and
//! history.

use rusqlite::{params, Connection, OptionalExtension};

use super::events::record_event;
use super::forwards::queue_lead_event;
use super::leads::lead_from_row;
use super::writer::Written;
use super::Sqlite;
use crate::model::forward::EventType;
use crate::model::{
    format_unix_ms, now_ms, Changed, Edit, Event, EventKind, HistoryEntry, Lead, LeadChange,
    LeadDetail, Note, TOKEN_USER,
};
use crate::store::changes::plan;
use crate::store::rows::{LEAD_COLUMNS, LEAD_FROM};
use crate::store::StoreError;

impl Sqlite {
    pub async fn change_lead(&self, change: LeadChange) -> Result<Changed, StoreError> {
        self.write(move |c| {
            let (outcome, event) = change_lead(c, &change, now_ms())?;
            Ok(Written {
                value: outcome,
                inserted: event.into_iter().collect(),
            })
        })
        .await
    }

    pub async fn lead_detail(&self, id: i64) -> Result<Option<LeadDetail>, StoreError> {
        self.read(move |c| {
            let Some(lead) = read_lead(c, id)? else {
                return Ok(None);
            };
            let notes = c
                .prepare_cached(
                    "SELECT id, author, text, created_ms FROM notes WHERE lead_id = ?1 ORDER BY id",
                )?
                .query_map([id], |r| {
                    Ok(Note {
                        id: r.get(0)?,
                        author: r.get(1)?,
                        text: r.get(2)?,
                        created_at: format_unix_ms(r.get(3)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let history = c
                .prepare_cached(
                    "SELECT at_ms, changed_by, field, from_value, to_value FROM history
                     WHERE lead_id = ?1 ORDER BY id",
                )?
                .query_map([id], |r| {
                    Ok(HistoryEntry {
                        at: format_unix_ms(r.get(0)?),
                        by: r.get(1)?,
                        field: r.get(2)?,
                        from: r.get(3)?,
                        to: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(LeadDetail {
                lead,
                notes,
                history,
            }))
        })
        .await
    }
}

fn read_lead(c: &Connection, id: i64) -> rusqlite::Result<Option<Lead>> {
    c.prepare_cached(&format!(
        "SELECT {LEAD_COLUMNS} {LEAD_FROM} WHERE l.id = ?1"
    ))?
    .query_row([id], lead_from_row)
    .optional()
}

/// The one place a change to a lead is committed (inside the writer's transaction): the
/// outcome, and the event to publish once the transaction is committed.
fn change_lead(
    c: &Connection,
    change: &LeadChange,
    now: i64,
) -> rusqlite::Result<(Changed, Option<Event>)> {
    let Some(lead) = read_lead(c, change.lead_id)? else {
        return Ok((Changed::NoSuchLead, None));
    };
    if change.version.is_some_and(|v| v != lead.version) {
        return Ok((Changed::Stale(lead), None));
    }
    // The owner as the users table spells the name.
    let owner = match &change.edit {
        Edit::Set {
            owner: Some(Some(name)),
            ..
        } => match user_name(c, name)? {
            Some(known) => Some(Some(known)),
            None => return Ok((Changed::NoSuchUser(name.clone()), None)),
        },
        Edit::Set {
            owner: Some(None), ..
        } => Some(None),
        _ => None,
    };
    let plan = plan(&lead, &change.edit, owner);
    if plan.is_empty() {
        return Ok((Changed::Unchanged(lead), None));
    }
    let id = change.lead_id;
    let note = match &plan.note {
        Some(text) => {
            let note_id: i64 = c
                .prepare_cached(
                    "INSERT INTO notes (lead_id, author, text, created_ms) VALUES (?1, ?2, ?3, ?4)
                     RETURNING id",
                )?
                .query_row(params![id, change.by, text, now], |r| r.get(0))?;
            Some(Note {
                id: note_id,
                author: change.by.clone(),
                text: text.clone(),
                created_at: format_unix_ms(now),
            })
        }
        None => None,
    };
    for (field, from, to) in &plan.history {
        c.prepare_cached(
            "INSERT INTO history (lead_id, at_ms, changed_by, field, from_value, to_value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![id, now, change.by, field, from, to])?;
    }
    c.prepare_cached(
        "UPDATE leads SET status = ?2, owner = ?3, updated_ms = ?4, version = version + 1,
                          notes_count = notes_count + ?5,
                          first_contact_ms = CASE WHEN ?6 THEN coalesce(first_contact_ms, ?4)
                                                  ELSE first_contact_ms END
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        plan.status.as_str(),
        plan.owner,
        now,
        i64::from(note.is_some()),
        plan.first_contact,
    ])?;
    let event_id = record_event(c, EventKind::Updated, id, now)?;
    let lead = read_lead(c, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    // Forwarded as `lead.updated`, in the same transaction: never a change without its deliveries.
    queue_lead_event(
        c,
        EventType::LeadUpdated,
        std::slice::from_ref(&lead),
        |_| format_unix_ms(now),
    )?;
    let event = Event::about(EventKind::Updated, event_id, lead.clone());
    Ok((Changed::Done { lead, note }, Some(event)))
}

/// `name` as the users table spells it, or the token's user; `None` for nobody.
fn user_name(c: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    if name.eq_ignore_ascii_case(TOKEN_USER) {
        return Ok(Some(TOKEN_USER.to_string()));
    }
    c.prepare_cached("SELECT name FROM users WHERE name_key = ?1")?
        .query_row([name.to_ascii_lowercase()], |r| r.get(0))
        .optional()
}
