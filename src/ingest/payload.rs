//! The webhook payload, parsed once into typed values.
//!
//! Meta's envelope is `{"object":"page","entry":[{"id","time","changes":[{"field","value"}]}]}`
//! for Lead Ads and `{"object":"page","entry":[{"messaging":[…]}]}` for Messenger. Ids come as
//! JSON numbers in some deliveries and strings in others, and 16-digit ids do not fit an f64,
//! so every id is read as text. Parsing never fails: a body that cannot be used is still a
//! [`Delivery`], with a note saying why, because a signed delivery is kept raw and answered 200.

use serde_json::Value;

use crate::model::is_meta_id;
pub use crate::model::LeadgenChange;

/// What a delivery holds, for the `deliveries.kind` column and the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    Leadgen,
    Messaging,
    Mixed,
    Unusable,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Leadgen => "leadgen",
            DeliveryKind::Messaging => "messaging",
            DeliveryKind::Mixed => "mixed",
            DeliveryKind::Unusable => "unusable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub kind: DeliveryKind,
    /// Every leadgen change of every entry, in order, duplicates removed.
    pub leads: Vec<LeadgenChange>,
    /// Messenger events seen (kept raw, not leads).
    pub messaging_events: usize,
    /// Why (parts of) the body could not be used, for people reading the log or the table.
    pub notes: Vec<String>,
}

impl Delivery {
    fn unusable(note: String) -> Delivery {
        Delivery {
            kind: DeliveryKind::Unusable,
            leads: Vec::new(),
            messaging_events: 0,
            notes: vec![note],
        }
    }
}

/// Notes are capped so a body with 10,000 broken changes does not produce a 1 MB note.
const MAX_NOTES: usize = 20;

/// Parses a (verified) webhook body. Never panics, whatever the bytes.
pub fn parse(body: &[u8]) -> Delivery {
    // serde_json refuses nesting deeper than 128 levels with an error, not a stack overflow.
    let root: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Delivery::unusable(format!("not JSON: {e}")),
    };
    let Some(obj) = root.as_object() else {
        return Delivery::unusable("not a JSON object".into());
    };
    let Some(entries) = obj.get("entry").and_then(Value::as_array) else {
        return Delivery::unusable("no entry list".into());
    };
    let mut d = Delivery {
        kind: DeliveryKind::Unusable,
        leads: Vec::new(),
        messaging_events: 0,
        notes: Vec::new(),
    };
    let note = |d: &mut Delivery, s: String| {
        if d.notes.len() < MAX_NOTES {
            d.notes.push(s);
        }
    };
    let mut seen = std::collections::HashSet::new();
    for (ei, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.as_object() else {
            note(&mut d, format!("entry[{ei}] is not an object"));
            continue;
        };
        let entry_id = entry.get("id").and_then(id_text);
        if let Some(msgs) = entry.get("messaging").and_then(Value::as_array) {
            d.messaging_events += msgs.len();
        }
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            continue;
        };
        for (ci, change) in changes.iter().enumerate() {
            let field = change.get("field").and_then(Value::as_str);
            if field != Some("leadgen") {
                // Shortened: the note is logged, and a field name can be megabytes long.
                let shown: Option<String> = field.map(|f| f.chars().take(40).collect());
                note(
                    &mut d,
                    format!("entry[{ei}].changes[{ci}]: field {shown:?} is not leadgen"),
                );
                continue;
            }
            match leadgen_change(change.get("value"), entry_id.as_deref()) {
                Ok(c) => {
                    if seen.insert(c.leadgen_id.clone()) {
                        d.leads.push(c);
                    }
                }
                Err(why) => note(&mut d, format!("entry[{ei}].changes[{ci}]: {why}")),
            }
        }
    }
    d.kind = match (d.leads.is_empty(), d.messaging_events == 0) {
        (false, true) => DeliveryKind::Leadgen,
        (false, false) => DeliveryKind::Mixed,
        (true, false) => DeliveryKind::Messaging,
        (true, true) => DeliveryKind::Unusable,
    };
    if d.kind == DeliveryKind::Unusable && d.notes.is_empty() {
        d.notes
            .push("no leadgen changes and no messaging events".into());
    }
    d
}

fn leadgen_change(value: Option<&Value>, entry_id: Option<&str>) -> Result<LeadgenChange, String> {
    let value = value
        .and_then(Value::as_object)
        .ok_or("value is not an object")?;
    let leadgen_id = value
        .get("leadgen_id")
        .and_then(id_text)
        .ok_or("leadgen_id missing or not an id")?;
    if !is_meta_id(&leadgen_id) {
        return Err("leadgen_id is not digits".into());
    }
    // An id that is not digits is dropped rather than trusted: it would end up in a URL.
    let opt_id = |k: &str| {
        value
            .get(k)
            .and_then(id_text)
            .filter(|s| is_meta_id(s) && s != "0")
    };
    Ok(LeadgenChange {
        leadgen_id,
        page_id: opt_id("page_id").or_else(|| {
            entry_id
                .filter(|s| is_meta_id(s) && *s != "0")
                .map(str::to_string)
        }),
        form_id: opt_id("form_id"),
        ad_id: opt_id("ad_id"),
        adgroup_id: opt_id("adgroup_id"),
        created_time: value.get("created_time").and_then(unix_seconds),
    })
}

/// An id as text, whether Meta sent `"123"` or `123`. Floats (`1.5`, `1e999`) are not ids.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn unix_seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_numbers_or_strings_become_text_and_a_missing_ad_id_is_none() {
        let body = br#"{"object":"page","entry":[{"id":"111","time":1700000000,"changes":[
            {"field":"leadgen","value":{"leadgen_id":1234567890123456,"page_id":111,"form_id":"222","created_time":1700000000}},
            {"field":"leadgen","value":{"leadgen_id":"9876543210987654","page_id":"111","form_id":222,"ad_id":"0","adgroup_id":0}}
        ]}]}"#;
        let d = parse(body);
        assert_eq!(d.kind, DeliveryKind::Leadgen);
        assert_eq!(d.leads.len(), 2);
        assert_eq!(d.leads[0].leadgen_id, "1234567890123456");
        assert_eq!(d.leads[0].page_id.as_deref(), Some("111"));
        assert_eq!(d.leads[0].created_time, Some(1_700_000_000));
        assert_eq!(d.leads[1].form_id.as_deref(), Some("222"));
        assert_eq!(d.leads[1].ad_id, None);
        assert_eq!(d.leads[1].adgroup_id, None);
    }

    #[test]
    fn every_entry_and_change_is_read_and_no_lead_comes_twice() {
        let body = br#"{"object":"page","entry":[
            {"id":"1","changes":[{"field":"leadgen","value":{"leadgen_id":"10"}},{"field":"leadgen","value":{"leadgen_id":"11"}}]},
            {"id":"2","changes":[{"field":"leadgen","value":{"leadgen_id":"12"}},{"field":"leadgen","value":{"leadgen_id":"10"}}]}]}"#;
        let d = parse(body);
        let ids: Vec<_> = d.leads.iter().map(|c| c.leadgen_id.as_str()).collect();
        assert_eq!(ids, ["10", "11", "12"]);
        assert_eq!(
            d.leads[2].page_id.as_deref(),
            Some("2"),
            "page falls back to entry.id"
        );
    }

    #[test]
    fn messaging_is_its_own_kind() {
        let body = br#"{"object":"page","entry":[{"id":"1","time":1700000000000,"messaging":[{"sender":{"id":"5"},"message":{"text":"hi"}}]}]}"#;
        let d = parse(body);
        assert_eq!(d.kind, DeliveryKind::Messaging);
        assert_eq!(d.messaging_events, 1);
        assert!(d.leads.is_empty());
    }

    #[test]
    fn hostile_bodies_are_unusable_not_panics() {
        let deep = "[".repeat(10_000);
        let cases: Vec<&[u8]> = vec![
            b"", b"not json", b"[]", b"null", b"{}", b"{\"entry\":5}", b"{\"entry\":[null,1,\"x\"]}",
            b"{\"entry\":[{\"changes\":[{\"field\":\"leadgen\",\"value\":{\"leadgen_id\":1e999}}]}]}",
            b"{\"entry\":[{\"changes\":[{\"field\":\"leadgen\",\"value\":{\"leadgen_id\":\"../../x\"}}]}]}",
            b"{\"entry\":[{\"changes\":[{\"field\":\"leadgen\",\"value\":{\"leadgen_id\":-5}}]}]}",
            b"\0\0\0", deep.as_bytes(),
        ];
        for c in cases {
            let d = parse(c);
            assert_eq!(
                d.kind,
                DeliveryKind::Unusable,
                "{:?}",
                String::from_utf8_lossy(c)
            );
            assert!(d.leads.is_empty());
            assert!(!d.notes.is_empty());
        }
    }

    #[test]
    fn the_dashboard_test_buttons_dummy_is_a_normal_change() {
        let body = br#"{"object":"page","entry":[{"id":"0","time":1700000000,"changes":[{"field":"leadgen","value":{"ad_id":"444444444","form_id":"444444444444","leadgen_id":"444444444444","created_time":1700000000,"page_id":"444444444444","adgroup_id":"44444444444"}}]}]}"#;
        let d = parse(body);
        assert_eq!(d.leads[0].leadgen_id, "444444444444");
    }
}
