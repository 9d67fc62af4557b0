//! E-mail destinations against a local SMTP server: one mail per new lead, parsed as MIME.

use std::time::Duration;

use leadstream::config::Secret;
use mail_parser::MessageParser;
use serde_json::json;

use super::*;
use crate::helpers::smtp::SmtpServer;

#[tokio::test]
async fn each_new_lead_is_mailed_with_a_text_and_an_html_part_and_its_utf8_name_intact() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = TestApp::spawn_tuned(|s| {
        s.smtp = Some((Secret::new(url), "leadstream <leads@example.com>".into()));
        s.public_url = Some("https://leads.example.com".into());
    })
    .await;
    let (status, v) = post_destination(
        &app,
        &json!({"kind": "email", "to": ["sales@example.com", "boss@example.com"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert!(v.get("secret").is_none());
    let id = v["id"].as_i64().unwrap();
    let lead = lead_id(1);
    app.graph.add_lead(
        &lead,
        FORM_ID,
        1_764_338_531,
        &[
            ("full_name", "Zoë Ødegård"),
            ("email", "zoe@example.com"),
            ("phone_number", "+47 22 33 44 55"),
            ("question", "<script>alert(1)</script> & more"),
        ],
    );
    app.deliver(&[&lead]).await;
    let mails = smtp.wait_for_mails(1, Duration::from_secs(10)).await;
    let mail = &mails[0];
    assert_eq!(mail.recipients, ["sales@example.com", "boss@example.com"]);
    let raw = String::from_utf8_lossy(&mail.data);
    assert!(
        raw.contains("=?utf-8?"),
        "the subject as encoded words: {raw}"
    );
    let m = MessageParser::default().parse(&mail.data).unwrap();
    let subject = m.subject().unwrap();
    assert!(subject.starts_with("New lead: Zoë Ødegård — "), "{subject}");
    let text = m.body_text(0).unwrap();
    assert!(text.contains("full_name: Zoë Ødegård"), "{text}");
    assert!(
        text.contains("question: <script>alert(1)</script> & more"),
        "{text}"
    );
    assert!(
        text.contains(&format!("https://leads.example.com/?q={lead}")),
        "{text}"
    );
    let html = m.body_html(0).unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    assert!(html.contains("href=\"mailto:zoe@example.com\""), "{html}");
    assert!(html.contains("href=\"tel:+4722334455\""), "{html}");
    assert!(html.contains("Zoë Ødegård"));
    wait_for_deliveries(&app, id, Duration::from_secs(5), |d| {
        in_state(d, "delivered") == 1
    })
    .await;
    // One mail per lead: nothing more arrives.
    assert_eq!(smtp.mails().len(), 1);
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_retried_and_named_in_the_status() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_tuned(|s| {
        s.smtp = Some((Secret::new(url), "leads@example.com".into()));
    })
    .await;
    let (status, v) =
        post_destination(&app, &json!({"kind": "email", "to": ["sales@example.com"]})).await;
    assert_eq!(status, 201);
    let id = v["id"].as_i64().unwrap();
    save_leads(&app, 1, 1).await;
    let d = wait_for_deliveries(&app, id, Duration::from_secs(10), |d| {
        d.len() == 1 && d[0]["attempts"].as_i64().unwrap() >= 2
    })
    .await;
    assert_eq!(d[0]["state"], "pending");
    let s = app.status().await;
    assert!(
        s["problems"]
            .to_string()
            .contains("E-mail to sales@example.com has failed"),
        "{s}"
    );
}
