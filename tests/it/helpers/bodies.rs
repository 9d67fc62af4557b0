//! What tests send and what the fake Graph answers: webhook bodies, Meta-like lead ids.

use serde_json::{json, Value};

use super::app::{TestApp, FORM_ID, PAGE_ID};

/// A webhook body with one leadgen change per id, on one page (ids as strings).
pub fn leadgen_body(ids: &[&str]) -> Vec<u8> {
    let changes: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"field": "leadgen", "value": {
                "leadgen_id": id, "page_id": PAGE_ID, "form_id": FORM_ID, "created_time": 1_764_338_531
            }})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "page", "entry": [{"id": PAGE_ID, "time": 1_764_338_531, "changes": changes}]})).unwrap()
}

/// Lead ids that look like Meta's (16 digits), distinct per `n`.
pub fn lead_id(n: u64) -> String {
    format!("{}", 1_000_000_000_000_000u64 + n)
}

/// Adds `n` leads (ids from `first`) to the fake Graph, named "Person {i}".
pub fn add_graph_leads(app: &TestApp, first: u64, n: u64) -> Vec<String> {
    (first..first + n)
        .map(|i| {
            let id = lead_id(i);
            let name = format!("Person {i}");
            let email = format!("person{i}@example.com");
            app.graph.add_lead(
                &id,
                FORM_ID,
                1_764_338_531,
                &[
                    ("full_name", &name),
                    ("email", &email),
                    ("phone_number", "+44 20 7946 0000"),
                ],
            );
            id
        })
        .collect()
}

/// One change per `(leadgen_id, page_id, form_id)`, one entry per page, ids as strings.
pub fn body_with(changes: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut pages: Vec<&str> = changes.iter().map(|c| c.1).collect();
    pages.dedup();
    let entries: Vec<Value> = pages
        .iter()
        .map(|page| {
            let ch: Vec<Value> = changes
                .iter()
                .filter(|c| c.1 == *page)
                .map(|(id, page, form)| {
                    json!({"field": "leadgen", "value": {
                        "leadgen_id": id, "page_id": page, "form_id": form,
                        "created_time": 1_764_338_531
                    }})
                })
                .collect();
            json!({"id": page, "time": 1_764_338_531, "changes": ch})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "page", "entry": entries})).unwrap()
}

/// Adds `n` leads to the fake Graph whose answers are ~120 KB each (one long free-text
/// answer), so a few dozen of them fill every socket buffer between server and client.
pub fn add_big_graph_leads(app: &TestApp, first: u64, n: u64) -> Vec<String> {
    let essay = "I would like a quote for the whole building, please. ".repeat(1_700);
    (first..first + n)
        .map(|i| {
            let id = lead_id(i);
            app.graph.add_lead(
                &id,
                FORM_ID,
                1_764_338_531,
                &[("full_name", &format!("Person {i}")), ("message", &essay)],
            );
            id
        })
        .collect()
}
