//! The bytes of the SSE answer: what a lead, a refresh, the hello and a keep-alive look like
//! on the wire.

use bytes::Bytes;

use crate::model::Lead;

/// `id: 42\nevent: lead\ndata: {…}\n\n`. JSON has no raw newlines, so one `data:` line.
pub fn lead_frame(lead: &Lead) -> Bytes {
    let json = serde_json::to_string(lead).expect("a lead serialises");
    Bytes::from(format!("id: {}\nevent: lead\ndata: {json}\n\n", lead.id))
}

/// Tells a client to reload its list instead of waiting for a replay, and moves its
/// `Last-Event-ID` to `last_id`, the newest lead at that moment; live leads follow.
pub fn refresh_frame(last_id: i64) -> Bytes {
    Bytes::from(format!(
        "id: {last_id}\nevent: refresh\ndata: {{\"last_id\":{last_id}}}\n\n"
    ))
}

/// Ask EventSource to reconnect after 2 s, and say hello so proxies flush headers at once.
/// Ask EventSource to reconnect after 2 s, and say hello so proxies flush headers at once.
pub const HELLO: &[u8] = b"retry: 2000\n: leadstream\n\n";
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";
