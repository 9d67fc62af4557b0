//! Hostile webhook bodies, signed or not: refused or kept raw, never a crash, never a path
//! that reaches Graph, never more than 4 MiB read, and always our own error answer.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::db::{count, rows};
use crate::helpers::*;

/// Bodies a signed sender could still get wrong, or a leaked secret could be used to send.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let change = |value: &str| {
        format!(
            r#"{{"object":"page","entry":[{{"id":"{PAGE_ID}","time":1764338531,"changes":[{{"field":"leadgen","value":{value}}}]}}]}}"#
        )
        .into_bytes()
    };
    let with_id = |id: &str| change(&format!(r#"{{"leadgen_id":{id},"page_id":"{PAGE_ID}"}}"#));
    let deep_array = "[".repeat(100_000).into_bytes();
    let deep_object = "{\"a\":".repeat(100_000).into_bytes();
    let deep_inside = format!(
        r#"{{"object":"page","entry":[{}{}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    )
    .into_bytes();
    let many_bad_changes = {
        let one = r#"{"field":"leadgen","value":{"leadgen_id":"../../x"}},"#;
        let mut s = r#"{"object":"page","entry":[{"changes":["#.to_string();
        s.push_str(&one.repeat(5_000));
        s.push_str(r#"{}]}]}"#);
        s.into_bytes()
    };
    let long_field = format!(
        r#"{{"object":"page","entry":[{{"changes":[{{"field":"{}","value":{{}}}}]}}]}}"#,
        "A".repeat(100_000)
    )
    .into_bytes();
    let mut invalid_utf8 =
        br#"{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":""#
            .to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    invalid_utf8.extend_from_slice(br#""}}]}]}"#);
    vec![
        ("empty", Vec::new()),
        ("not JSON", b"leadgen_id=1234567890".to_vec()),
        ("an array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("a string", b"\"entry\"".to_vec()),
        ("an empty object", b"{}".to_vec()),
        ("entry is a string", br#"{"object":"page","entry":"x"}"#.to_vec()),
        ("entries of every wrong type", br#"{"object":"page","entry":[null,1,"x",[],true]}"#.to_vec()),
        ("changes is an object", br#"{"entry":[{"id":{},"changes":{"field":"leadgen"}}]}"#.to_vec()),
        ("value is a string", change(r#""1234567890""#)),
        ("value is null", change("null")),
        ("id is true", with_id("true")),
        ("id is a list", with_id(r#"["1234"]"#)),
        ("id is an object", with_id(r#"{"id":"1234"}"#)),
        ("id is negative", with_id("-5")),
        ("id is a fraction", with_id("1.5")),
        ("id is 1e999", with_id("1e999")),
        ("id is 1e308", with_id("1e308")),
        ("id overflows u64", with_id("99999999999999999999999")),
        ("id is empty", with_id(r#""""#)),
        ("id is blank", with_id(r#""   ""#)),
        ("id climbs directories", with_id(r#""../../x""#)),
        ("digits then a path", with_id(r#""123/../../x""#)),
        ("digits then a query", with_id(r#""123?fields=access_token""#)),
        ("digits then a fragment", with_id(r#""123#x""#)),
        ("an encoded path", with_id(r#""%2e%2e%2fx""#)),
        ("a URL", with_id(r#""http://evil.example/1""#)),
        ("fullwidth digits", with_id(r#""１２３""#)),
        ("33 digits", with_id(&format!(r#""{}""#, "1".repeat(33)))),
        ("an escaped NUL in the id", with_id(r#""123\u0000""#)),
        ("a lone surrogate", with_id(r#""\ud800""#)),
        ("raw NUL bytes", b"\0\0\0\0".to_vec()),
        ("NUL inside JSON", b"{\"entry\":[\0]}".to_vec()),
        (
            "NUL in the field name",
            b"{\"entry\":[{\"changes\":[{\"field\":\"leadgen\0\",\"value\":{\"leadgen_id\":\"1\"}}]}]}".to_vec(),
        ),
        ("NUL after the JSON", [&b"{}"[..], b"\0"].concat()),
        ("invalid UTF-8 alone", b"\xff\xfe\xfd".to_vec()),
        ("invalid UTF-8 in a string", invalid_utf8),
        ("a number with 10,000 digits", format!("1{}", "0".repeat(10_000)).into_bytes()),
        ("1e999 as created_time", change(r#"{"leadgen_id":"../x","created_time":1e999}"#)),
        ("100k nested arrays", deep_array),
        ("100k nested objects", deep_object),
        ("100k nested arrays inside entry", deep_inside),
        ("5,000 broken changes", many_bad_changes),
        ("a 100 KB field name", long_field),
        (
            "a change that is not leadgen",
            br#"{"entry":[{"changes":[{"field":"feed","value":{"leadgen_id":"1234"}}]}]}"#.to_vec(),
        ),
    ]
}

#[tokio::test]
async fn hostile_signed_webhook_bodies_get_a_4xx_or_a_logged_200_and_a_real_lead_still_flows() {
    let app = TestApp::spawn().await;
    let mut accepted = 0;
    for (what, body) in hostile_bodies() {
        let started = Instant::now();
        let r = app.post_webhook(&body).await;
        let status = r.status();
        assert!(
            status == 200 || status.is_client_error(),
            "{what}: {status} {}",
            r.text().await.unwrap_or_default()
        );
        // Generous for an unoptimised test build on a busy machine: this catches a blow-up
        // (a quadratic walk, a recursion), not a slow millisecond.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{what} took {:?}",
            started.elapsed()
        );
        if status == 200 {
            accepted += 1;
            // A 200 means the body was kept raw with a note saying why it is unusable.
            let row = rows(
                &app,
                "SELECT kind, note FROM deliveries ORDER BY id DESC LIMIT 1",
            )
            .await
            .remove(0);
            let (kind, note) = (row[0].clone().unwrap(), row[1].clone());
            assert_eq!(kind, "unusable", "{what}");
            let note = note.unwrap_or_default();
            assert!(!note.is_empty(), "{what}: no note");
            assert!(
                note.len() < 16 * 1024,
                "{what}: a note of {} bytes",
                note.len()
            );
        }
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM deliveries").await,
        accepted
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM jobs").await,
        0,
        "no hostile body made a job"
    );

    let id = lead_id(7);
    app.graph
        .add_lead(&id, FORM_ID, 1_764_338_531, &[("full_name", "Real Person")]);
    app.deliver(&[&id]).await;
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    assert_eq!(app.leads("").await["leads"][0]["leadgen_id"], id);
    assert_graph_saw_only_ids(&app);
}

/// Every path the fake Graph was asked for is made of ids (digits) and Graph's own words.
fn assert_graph_saw_only_ids(app: &TestApp) {
    let calls = app.graph.calls();
    assert!(!calls.is_empty());
    for call in calls {
        for segment in call.split('/').filter(|s| !s.is_empty()) {
            assert!(
                segment.bytes().all(|b| b.is_ascii_digit())
                    || ["leads", "leadgen_forms"].contains(&segment),
                "Graph was asked for {call:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_lead_id_that_is_not_digits_never_reaches_graph() {
    let app = TestApp::spawn().await;
    let good = lead_id(3);
    app.graph
        .add_lead(&good, FORM_ID, 1_764_338_531, &[("full_name", "Good Lead")]);
    // One delivery: a traversal id, then a real lead whose other ids are hostile (dropped,
    // not trusted), then more ids that would change the URL.
    let body = json!({"object": "page", "entry": [{"id": "../../pages", "time": 1, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": "../../x", "page_id": PAGE_ID}},
        {"field": "leadgen", "value": {"leadgen_id": good, "page_id": "../x", "form_id": FORM_ID,
            "ad_id": "1?x=", "adgroup_id": "#"}},
        {"field": "leadgen", "value": {"leadgen_id": "1/leads", "page_id": PAGE_ID}},
        {"field": "leadgen", "value": {"leadgen_id": "1?access_token=x", "page_id": PAGE_ID}},
    ]}]});
    let r = app.post_webhook(&serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let lead = &app.leads("").await["leads"][0];
    assert_eq!(lead["leadgen_id"], good);
    assert_eq!(lead["ad_id"], Value::Null, "a hostile ad id is dropped");
    let jobs: Vec<String> = rows(&app, "SELECT leadgen_id FROM jobs")
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert_eq!(jobs, vec![good.clone()]);
    assert_eq!(app.graph.lead_calls(&good), 1);
    assert_graph_saw_only_ids(&app);
}

const OVER_LIMIT: usize = 5 * 1024 * 1024;
const LIMIT: usize = 4 * 1024 * 1024;

/// A JSON body of exactly `len` bytes (a real leadgen body padded with spaces).
fn padded_body(len: usize, id: &str) -> Vec<u8> {
    let mut body = leadgen_body(&[id]);
    assert!(body.len() < len);
    body.resize(len, b' ');
    body
}

/// POSTs `body` to /webhook as a chunked stream of 64 KiB pieces (no Content-Length).
async fn post_chunked(app: &TestApp, body: Vec<u8>, signature: &str) -> reqwest::Response {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    app.client
        .post(app.url("/webhook"))
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("an answer, not a reset connection")
}

#[tokio::test]
async fn bodies_over_4_mib_are_refused_with_413_whether_declared_or_chunked() {
    let app = TestApp::spawn().await;
    // The size is checked before the signature, so these need no real one (signing megabytes
    // in an unoptimised test build costs seconds).
    let unsigned = format!("sha256={}", "0".repeat(64));
    for (what, len) in [("5 MiB", OVER_LIMIT), ("4 MiB + 1 byte", LIMIT + 1)] {
        let body = padded_body(len, &lead_id(1));
        let r = app.post_webhook_raw(body.clone(), Some(&unsigned)).await;
        assert_eq!(r.status(), 413, "{what} with Content-Length");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("4 MiB"), "{v}");
        let r = post_chunked(&app, body, &unsigned).await;
        assert_eq!(r.status(), 413, "{what} chunked");
    }
    // Exactly 4 MiB is read in full both ways: it gets as far as the signature check.
    let body = padded_body(LIMIT, &lead_id(1));
    let r = app.post_webhook_raw(body.clone(), Some(&unsigned)).await;
    assert_eq!(r.status(), 403, "4 MiB with Content-Length");
    let r = post_chunked(&app, body, &unsigned).await;
    assert_eq!(r.status(), 403, "4 MiB chunked");
    assert_eq!(count(&app, "SELECT count(*) FROM deliveries").await, 0);

    // The server is unharmed.
    let ids = add_graph_leads(&app, 10, 1);
    app.deliver(&[&ids[0]]).await;
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn a_body_that_breaks_off_gets_a_4xx_with_the_security_headers() {
    // A client that promises 100 bytes and hangs up after 7 makes warp's body reader fail;
    // the answer must still be ours (4xx, JSON, headers), not warp's bare text default.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    for path in ["/login", "/webhook"] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 100\r\n\r\ntoken=x"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 400 "), "{path}: {answer}");
        assert!(
            answer.contains("content-type: application/json"),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("content-security-policy: default-src 'self'"),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("x-content-type-options: nosniff"),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("cache-control: no-store"),
            "{path}: {answer}"
        );
    }
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
