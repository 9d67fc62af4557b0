//! The bytes of the SSE answer: what a lead, a refresh, a logout, the hello and a keep-alive
//! look like on the wire, and the HTTP/1.1 chunk around them.
//!
//! Only events end with a blank line. The hello and the keep-alive are lines a client reads and
//! forgets: a blank line after them would dispatch an event with no data, which some client
//! libraries hand to their caller as an empty `message` (httpx-sse does, after a `retry:` or
//! once any `id:` was seen), and `json.loads("")` then raises.

use bytes::{BufMut, Bytes, BytesMut};

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

/// `event: erased\ndata: {"id":42}\n\n` for each of `ids`: the page drops those leads. No
/// `id:`, so the client's resume point stays where it was; the data carries the id only.
pub fn erased_frames(ids: &[i64]) -> Bytes {
    let mut out = String::new();
    for id in ids {
        out.push_str(&format!("event: erased\ndata: {{\"id\":{id}}}\n\n"));
    }
    Bytes::from(out)
}

/// The session this stream was opened with has ended (logout or expiry); the stream ends
/// after it. No `id:`, so the client's resume point stays where it was.
pub const LOGOUT: &[u8] = b"event: logout\ndata: {}\n\n";

/// Ask EventSource to reconnect after 2 s, and say hello so proxies flush headers at once.
pub const HELLO: &[u8] = b"retry: 2000\n: leadstream\n";
/// A comment line: keeps proxies and dead-client detection honest, dispatches nothing.
pub const KEEPALIVE: &[u8] = b": keep-alive\n";
/// [`KEEPALIVE`] as one HTTP/1.1 chunk.
pub const KEEPALIVE_CHUNK: &[u8] = b"d\r\n: keep-alive\n\r\n";
/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `frame` as one HTTP/1.1 chunk: its size in hex, CRLF, the bytes, CRLF. Made once per lead
/// for every chunked stream the fan-out writes.
pub fn chunk(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.len() + 12);
    out.put_slice(chunk_size_line(frame.len()).as_bytes());
    out.put_slice(frame);
    out.put_slice(b"\r\n");
    out.freeze()
}

/// The line that opens a chunk of `len` bytes.
pub fn chunk_size_line(len: usize) -> String {
    format!("{len:x}\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_its_hex_size_the_bytes_and_crlf() {
        assert_eq!(&chunk(b"hello")[..], b"5\r\nhello\r\n");
        assert_eq!(&chunk(&[b'x'; 26])[..6], b"1a\r\nxx");
        assert_eq!(&chunk(KEEPALIVE)[..], KEEPALIVE_CHUNK);
    }

    #[test]
    fn only_events_end_with_a_blank_line() {
        for line in [HELLO, KEEPALIVE] {
            assert!(line.ends_with(b"\n") && !line.ends_with(b"\n\n"));
        }
        assert!(LOGOUT.ends_with(b"\n\n"));
        assert!(refresh_frame(3).ends_with(b"\n\n"));
    }
}
