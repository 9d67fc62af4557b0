//! A stream lasts no longer than the session it was opened with: logout and expiry end it
//! with `event: logout`, on HTTP/1 and HTTP/2 alike, while other sessions' streams and the
//! bearer token's go on.

use std::time::Duration;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// A new session's cookie (`leadstream_session=…`).
async fn session(app: &TestApp) -> String {
    let r = login(&app.client, app, DASHBOARD_TOKEN).await;
    assert_eq!(r.status(), 303);
    set_cookie(&r).0
}

/// A stream opened with `cookie` the way `via` says (the dashboard's EventSource: browser-style).
async fn stream_with_cookie(app: &TestApp, via: Via, cookie: &str) -> SseClient {
    let res = app.stream_with(via, Creds::Cookie(cookie), "", None).await;
    assert_eq!(res.status(), 200);
    SseClient::new(res)
}

/// Waits for `event: logout` (data `{}`), then for the end of the stream.
async fn logged_out(s: &mut SseClient, what: &str) {
    let ev = s
        .next_event(WAIT)
        .await
        .unwrap_or_else(|| panic!("{what}: no event"));
    assert_eq!(ev.event, "logout", "{what}: {ev:?}");
    assert_eq!(ev.data, "{}", "{what}");
    assert!(s.ends_within(WAIT).await, "{what}: still open after logout");
}

#[tokio::test]
async fn logout_ends_the_sessions_open_streams_with_a_logout_event_and_no_others() {
    let app = TestApp::spawn().await;
    let mine = session(&app).await;
    let theirs = session(&app).await;
    let mut h1 = stream_with_cookie(&app, Via::Browser, &mine).await;
    let mut h2 = stream_with_cookie(&app, Via::Http2, &mine).await;
    let mut other = stream_with_cookie(&app, Via::Browser, &theirs).await;
    let mut bearer = app.open_stream_via(Via::Browser, None).await;

    let r = app
        .client
        .post(app.url("/logout"))
        .header("cookie", &mine)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    logged_out(&mut h1, "HTTP/1 stream").await;
    logged_out(&mut h2, "HTTP/2 stream").await;

    // The others go on, and get the next lead.
    let id = add_graph_leads(&app, 1, 1).remove(0);
    app.deliver(&[&id]).await;
    for s in [&mut other, &mut bearer] {
        assert_eq!(s.leads(1, WAIT).await[0]["leadgen_id"], id.as_str());
    }
    // And the ended session opens nothing again.
    assert_eq!(
        get_with_cookie(&app, "/api/stream", &mine).await.status(),
        401
    );
}

#[tokio::test]
async fn an_expiring_session_ends_its_open_stream() {
    let app = TestApp::spawn_tuned(|s| s.tuning.session_ttl = Duration::from_millis(1500)).await;
    let cookie = session(&app).await;
    let mut s = stream_with_cookie(&app, Via::Browser, &cookie).await;
    let mut bearer = app.open_stream(None).await;
    logged_out(&mut s, "the expired session's stream").await;
    assert_eq!(
        get_with_cookie(&app, "/api/leads", &cookie).await.status(),
        401
    );
    let id = add_graph_leads(&app, 1, 1).remove(0);
    app.deliver(&[&id]).await;
    assert_eq!(bearer.leads(1, WAIT).await[0]["leadgen_id"], id.as_str());
}
