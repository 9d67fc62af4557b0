//! `meta::webhook::parse` on arbitrary bytes: it must never panic, and what it returns must
//! be safe to use (ids are digits, no lead twice, the kind matches, notes are bounded).
//! The same invariants are checked by tests/it/security/properties.rs in `make test`.
#![no_main]

use std::collections::HashSet;

use leadstream::meta::is_meta_id;
use leadstream::meta::webhook::{parse, DeliveryKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = parse(data);
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
    let kind = match (d.leads.is_empty(), d.messaging_events == 0) {
        (false, true) => DeliveryKind::Leadgen,
        (false, false) => DeliveryKind::Mixed,
        (true, false) => DeliveryKind::Messaging,
        (true, true) => DeliveryKind::Unusable,
    };
    assert_eq!(d.kind, kind);
    assert!(d.kind != DeliveryKind::Unusable || !d.notes.is_empty());
    assert!(d.notes.len() <= 20);
    assert!(d.notes.iter().all(|n| n.len() <= 512), "note too long");
});
