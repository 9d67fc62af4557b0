//! `meta::webhook::parse` on arbitrary bytes: it must never panic, and what it returns must
//! be safe to use (ids are digits, no lead twice, the kind matches, notes are bounded).
//! The same invariants are checked by tests/it/security/properties.rs in `make test`.
#![no_main]

// The invariants live in one file shared with the property tests of `make test`.
#[path = "../../tests/it/security/invariants.rs"]
mod invariants;

use leadstream::ingest::payload::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    invariants::check_invariants(&parse(data));
});
