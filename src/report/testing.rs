//! Leads for the report tests.

use crate::model::{flatten_fields, FieldData, Lead};

/// Lead `id` on page 111, form 222 (named `form` when given), created at `created`.
pub fn lead(id: i64, form: Option<&str>, created: &str, answers: &[(&str, &str)]) -> Lead {
    let field_data: Vec<FieldData> = answers
        .iter()
        .map(|(n, v)| FieldData {
            name: (*n).into(),
            values: vec![(*v).into()],
        })
        .collect();
    Lead {
        page_id: Some("111".into()),
        form_id: Some("222".into()),
        form_name: form.map(Into::into),
        created_time: created.into(),
        received_at: "2026-11-28T14:02:12.345Z".into(),
        fields: flatten_fields(&field_data),
        field_data,
        ..Lead::sample(id)
    }
}
