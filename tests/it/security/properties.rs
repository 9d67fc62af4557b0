//! Property tests of the two functions that see every byte a stranger sends: the webhook
//! parser ([`parse`]) and the signature check ([`verify`]).
//!
//! `fuzz/` holds cargo-fuzz targets for the same functions, but libFuzzer needs a nightly
//! compiler (or `RUSTC_BOOTSTRAP=1`), which CI does not have; these run in `make test` in a few
//! seconds. They feed three kinds of input: arbitrary bytes, Meta-shaped envelopes built from
//! good and hostile pieces (checked against an independent model of which ids must come out),
//! and those envelopes mutated byte by byte. Every file of the fuzz seed corpus is run too, so
//! the corpus in the repository stays meaningful.

use std::collections::HashSet;

use leadstream::ingest::payload::parse;
use leadstream::ingest::signature::{sign, verify, SignatureError};

use super::invariants::check_invariants;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// A value in an id position, and whether Meta's rules make it a usable id.
fn id_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[0-9]{1,20}".prop_map(Value::String),
        2 => any::<u64>().prop_map(|n| json!(n)),
        1 => "[0-9]{1,20}".prop_map(|s| Value::String(format!("  {s} "))),
        1 => Just(json!("0")),
        1 => Just(json!(0)),
        1 => "[0-9]{33,40}".prop_map(Value::String),
        1 => prop::sample::select(vec![
            "../../x", "123/../../x", "123?fields=x", "123#x", "%2e%2e", "１２３", "",
            "   ", "123\u{0}", "1 2", "-5", "+5", "0x1F", "1e5", "http://evil/1",
        ])
        .prop_map(|s| json!(s)),
        1 => any::<i64>().prop_filter("negative", |n| *n < 0).prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|f| json!(f)),
        1 => any::<String>().prop_map(Value::String),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(json!({"id": "123"})),
        1 => Just(json!(["123"])),
    ]
}

/// The model of an id position: Meta sends ids as digit strings or as integers.
fn model_id(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => return None,
    };
    let ok = !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(s)
}

fn maybe(
    key: &'static str,
    s: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Option<(&'static str, Value)>> {
    prop::option::of(s.prop_map(move |v| (key, v)))
}

fn object(pairs: Vec<Option<(&'static str, Value)>>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

/// One element of `changes`: mostly leadgen changes with good or hostile ids, some junk.
fn change() -> impl Strategy<Value = Value> {
    let value = (
        maybe("leadgen_id", id_value()),
        maybe("page_id", id_value()),
        maybe("form_id", id_value()),
        maybe("ad_id", id_value()),
        maybe("adgroup_id", id_value()),
        maybe(
            "created_time",
            prop_oneof![
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|f| json!(f)),
                any::<String>().prop_map(Value::String)
            ],
        ),
    )
        .prop_map(|(a, b, c, d, e, f)| object(vec![a, b, c, d, e, f]));
    let field = prop_oneof![
        6 => Just(json!("leadgen")),
        1 => prop::sample::select(vec!["feed", "Leadgen", "leadgen ", "messages"]).prop_map(|s| json!(s)),
        1 => any::<String>().prop_map(Value::String),
        // Long names: what a note quotes of them must stay short.
        1 => prop::collection::vec(any::<char>(), 0..2000).prop_map(|c| Value::String(c.into_iter().collect())),
        1 => Just(Value::Null),
    ];
    prop_oneof![
        8 => (field, prop_oneof![6 => value, 1 => Just(Value::Null), 1 => Just(json!("123")), 1 => Just(json!([]))])
            .prop_map(|(f, v)| json!({"field": f, "value": v})),
        1 => Just(Value::Null),
        1 => Just(json!(42)),
        1 => Just(json!({})),
    ]
}

/// One element of `entry`.
fn entry() -> impl Strategy<Value = Value> {
    let changes = prop_oneof![
        6 => prop::collection::vec(change(), 0..6).prop_map(Value::Array),
        1 => Just(json!({"field": "leadgen"})),
        1 => Just(Value::Null),
    ];
    let messaging = prop::collection::vec(
        Just(json!({"sender": {"id": "5"}, "message": {"text": "hi"}})),
        0..3,
    )
    .prop_map(Value::Array);
    let good = (
        maybe("id", id_value()),
        maybe("time", Just(json!(1_764_338_531))),
        maybe("changes", changes),
        maybe("messaging", messaging),
    )
        .prop_map(|(a, b, c, d)| object(vec![a, b, c, d]));
    prop_oneof![
        8 => good,
        1 => Just(Value::Null),
        1 => Just(json!("entry")),
        1 => Just(json!([[]])),
    ]
}

/// A whole envelope: mostly Meta's shape, sometimes with `entry` of the wrong type.
fn envelope() -> impl Strategy<Value = Value> {
    let entries = prop_oneof![
        8 => prop::collection::vec(entry(), 0..5).prop_map(Value::Array),
        1 => Just(json!({})),
        1 => Just(json!("x")),
    ];
    (
        prop::option::of(entries),
        prop_oneof![Just(json!("page")), Just(json!("user")), Just(Value::Null)],
    )
        .prop_map(|(entries, object)| {
            let mut m = Map::new();
            m.insert("object".into(), object);
            if let Some(e) = entries {
                m.insert("entry".into(), e);
            }
            Value::Object(m)
        })
}

/// The independent model: which lead ids (in order, first wins) and page ids must come out.
fn model(root: &Value) -> (Vec<(String, Option<String>)>, usize) {
    let mut leads = Vec::new();
    let mut seen = HashSet::new();
    let mut messaging = 0;
    let no_zero = |v: Option<&Value>| v.and_then(model_id).filter(|s| s != "0");
    for entry in root["entry"].as_array().into_iter().flatten() {
        let Some(e) = entry.as_object() else { continue };
        messaging += e
            .get("messaging")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for change in e
            .get("changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if change["field"] != json!("leadgen") {
                continue;
            }
            let Some(value) = change["value"].as_object() else {
                continue;
            };
            let Some(id) = value.get("leadgen_id").and_then(model_id) else {
                continue;
            };
            if seen.insert(id.clone()) {
                let page = no_zero(value.get("page_id")).or_else(|| no_zero(e.get("id")));
                leads.push((id, page));
            }
        }
    }
    (leads, messaging)
}

/// A few byte-level edits: what a proxy, a truncation or an attacker could do to a body.
#[derive(Debug, Clone)]
enum Edit {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b"{}[]\",:\\0 \x00\xff".to_vec())
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
    ]
}

fn apply(body: &mut Vec<u8>, e: &Edit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *e {
        Edit::Truncate(i) => body.truncate(at(i, body.len() + 1)),
        Edit::Flip(i, b) if !body.is_empty() => {
            let i = at(i, body.len());
            body[i] ^= b | 1;
        }
        Edit::Insert(i, b) => body.insert(at(i, body.len() + 1), b),
        Edit::Remove(i) if !body.is_empty() => {
            body.remove(at(i, body.len()));
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_invariants(&parse(&body));
    }

    #[test]
    fn parse_finds_exactly_the_ids_meta_rules_allow(root in envelope()) {
        let body = serde_json::to_vec(&root).unwrap();
        let d = parse(&body);
        check_invariants(&d);
        let (want, messaging) = model(&root);
        let got: Vec<(String, Option<String>)> =
            d.leads.iter().map(|l| (l.leadgen_id.clone(), l.page_id.clone())).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(d.messaging_events, messaging);
    }

    #[test]
    fn parse_survives_envelopes_edited_byte_by_byte(root in envelope(), edits in prop::collection::vec(edit(), 1..6)) {
        let mut body = serde_json::to_vec(&root).unwrap();
        for e in &edits {
            apply(&mut body, e);
        }
        check_invariants(&parse(&body));
    }

    #[test]
    fn parse_survives_deep_nesting(depth in 0usize..20_000, open in prop::sample::select(vec!["[", "{\"a\":", "{\"entry\":["])) {
        let mut body = br#"{"entry":"#.to_vec();
        body.extend(open.repeat(depth).bytes());
        check_invariants(&parse(&body));
    }

    #[test]
    fn a_signature_made_with_the_secret_verifies_in_any_case_and_padding(
        secret in prop::collection::vec(any::<u8>(), 0..100),
        body in prop::collection::vec(any::<u8>(), 0..2048),
        upper in any::<bool>(),
        pad in prop::sample::select(vec!["", " ", "\t", "  "]),
    ) {
        let sig = sign(&secret, &body);
        let sig = if upper { sig.to_ascii_uppercase() } else { sig };
        prop_assert_eq!(verify(&secret, &body, Some(&format!("{pad}{sig}{pad}"))), Ok(()));
    }

    #[test]
    fn any_change_to_body_signature_or_secret_is_a_mismatch(
        secret in prop::collection::vec(any::<u8>(), 1..100),
        body in prop::collection::vec(any::<u8>(), 1..2048),
        at in any::<usize>(),
        bit in 0u8..8,
        digit in 0usize..64,
    ) {
        let sig = sign(&secret, &body);
        let mut changed = body.clone();
        let i = at % changed.len();
        changed[i] ^= 1 << bit;
        prop_assert_eq!(verify(&secret, &changed, Some(&sig)), Err(SignatureError::Mismatch));

        let mut hex: Vec<u8> = sig.clone().into_bytes();
        let h = &mut hex[7 + digit];
        *h = if *h == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(hex).unwrap();
        prop_assert_eq!(verify(&secret, &body, Some(&forged)), Err(SignatureError::Mismatch));

        let mut other = secret.clone();
        other[at % secret.len()] ^= 1 << bit;
        prop_assert_eq!(verify(&other, &body, Some(&sig)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn arbitrary_headers_never_panic_and_never_pass_by_accident(
        body in prop::collection::vec(any::<u8>(), 0..256),
        header in prop_oneof![
            any::<String>(),
            any::<String>().prop_map(|s| format!("sha256={s}")),
            "[0-9a-fA-F]{60,68}".prop_map(|s| format!("sha256={s}")),
            prop::collection::vec(any::<char>(), 64).prop_map(|c| format!("sha256={}", c.into_iter().collect::<String>())),
        ],
    ) {
        let secret = b"test_app_secret";
        let got = verify(secret, &body, Some(&header));
        let right = sign(secret, &body);
        if got.is_ok() {
            prop_assert!(header.trim().eq_ignore_ascii_case(&right), "{header:?} passed");
        }
    }
}

#[test]
fn a_missing_or_empty_signature_never_passes() {
    for body in [&b""[..], b"{}", b"x"] {
        assert_eq!(verify(b"", body, None), Err(SignatureError::Missing));
        assert_eq!(verify(b"k", body, Some("")), Err(SignatureError::Malformed));
        assert_eq!(
            verify(b"k", body, Some("sha256=")),
            Err(SignatureError::Malformed)
        );
    }
}

/// The seed corpus of the fuzz targets, run here so it stays valid and its findings stay fixed.
#[test]
fn the_fuzz_seed_corpus_parses_within_the_invariants() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/fuzz_webhook_parse");
    let mut files = 0;
    let mut leads = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        let d = parse(&body);
        check_invariants(&d);
        leads += d.leads.len();
        files += 1;
    }
    assert!(files >= 5, "{files} seeds in {}", dir.display());
    assert!(leads > 0, "some seeds are real leadgen deliveries");
}
