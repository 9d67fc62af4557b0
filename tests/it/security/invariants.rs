//! What must hold for every result of `ingest::payload::parse`, whatever the bytes: ids are
//! digits, no lead twice, the kind matches, notes are bounded.
//!
//! One copy serves both checkers: the property tests (tests/it/security/properties.rs, in
//! `make test`) and the cargo-fuzz target (fuzz/fuzz_targets/fuzz_webhook_parse.rs, which
//! includes this file by path).

use std::collections::HashSet;

use leadstream::ingest::payload::{Delivery, DeliveryKind};
use leadstream::model::is_meta_id;

/// What must hold for every parse, whatever the bytes.
pub fn check_invariants(d: &Delivery) {
    let mut seen = HashSet::new();
    for lead in &d.leads {
        assert!(
            is_meta_id(&lead.leadgen_id),
            "lead id {:?}",
            lead.leadgen_id
        );
        assert!(
            seen.insert(&lead.leadgen_id),
            "lead {} twice",
            lead.leadgen_id
        );
        for id in [&lead.page_id, &lead.form_id, &lead.ad_id, &lead.adgroup_id]
            .into_iter()
            .flatten()
        {
            assert!(is_meta_id(id) && id != "0", "side id {id:?}");
        }
    }
    let expected_kind = match (d.leads.is_empty(), d.messaging_events == 0) {
        (false, true) => DeliveryKind::Leadgen,
        (false, false) => DeliveryKind::Mixed,
        (true, false) => DeliveryKind::Messaging,
        (true, true) => DeliveryKind::Unusable,
    };
    assert_eq!(d.kind, expected_kind);
    if d.kind == DeliveryKind::Unusable {
        assert!(!d.notes.is_empty(), "an unusable delivery says why");
    }
    // Notes go to the log and the deliveries table: bounded, whatever the body holds.
    assert!(d.notes.len() <= 20, "{} notes", d.notes.len());
    for n in &d.notes {
        assert!(n.len() <= 512, "a note of {} bytes", n.len());
    }
}
