//! The `forms` table: names and statuses of lead forms, learnt from Meta, so the dashboard
//! shows "Spring offer" rather than a 15-digit id.

use rusqlite::{params, OptionalExtension};

use super::writer::Written;
use super::Sqlite;
use crate::model::now_ms;
use crate::store::FormInfo;
use crate::store::StoreError;

impl Sqlite {
    /// Records forms of `page_id` (when known) in one transaction; a value Meta left out
    /// keeps what was known before.
    pub async fn remember_forms(
        &self,
        page_id: Option<String>,
        forms: Vec<FormInfo>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let mut upsert = c.prepare_cached(
                "INSERT INTO forms (form_id, page_id, name, status, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(form_id) DO UPDATE SET
                     page_id = coalesce(excluded.page_id, forms.page_id),
                     name = coalesce(excluded.name, forms.name),
                     status = coalesce(excluded.status, forms.status),
                     updated_ms = excluded.updated_ms",
            )?;
            for f in &forms {
                upsert.execute(params![f.form_id, page_id, f.name, f.status, now_ms()])?;
            }
            Ok(Written::value(()))
        })
        .await
    }

    /// The name of a form, when known.
    pub async fn form_name(&self, form_id: String) -> Result<Option<String>, StoreError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT name FROM forms WHERE form_id = ?1",
                [form_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
        })
        .await
    }
}
