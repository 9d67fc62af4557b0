//! A request head, parsed (httparse) and checked before anything acts on it: the body's
//! length is settled by one rule, and every head that two servers could read two ways
//! (request smuggling) is refused.

use warp::http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use warp::http::{request, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

/// Most headers in one request head.
const MAX_HEADERS: usize = 100;

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// A checked request head.
#[derive(Debug)]
pub struct Head {
    pub parts: request::Parts,
    pub body: BodyKind,
    /// The client may send another request on this connection after the answer.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending the body.
    pub expect_continue: bool,
}

/// Why a head was refused; each is answered, then the connection closes.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// 400, with words for the client.
    Malformed(&'static str),
    /// 431: more headers than [`MAX_HEADERS`] (the byte limit is the reader's).
    TooLarge,
}

/// Parses the head at the start of `buf`. `Ok(None)`: not complete yet. `Ok(Some((head,
/// len)))`: the head and how many bytes of `buf` it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, Bad> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Bad::TooLarge),
        Err(_) => return Err(Bad::Malformed("malformed request head")),
    };
    let method = req.method.unwrap_or_default();
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| Bad::Malformed("malformed method"))?;
    let target = req.path.unwrap_or_default();
    let uri: Uri = target
        .parse()
        .map_err(|_| Bad::Malformed("malformed request target"))?;
    // A target without a path (CONNECT's `host:port`, or that with any method) names nothing
    // served here, and warp's path filters panic on a URI without one.
    if uri.path_and_query().is_none() {
        return Err(Bad::Malformed(crate::http::NO_PATH));
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut map = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Bad::Malformed("malformed header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| Bad::Malformed("malformed header"))?;
        map.append(name, value);
    }
    let body = body_kind(&map, version)?;
    let keep_alive = keep_alive(&map, version);
    let expect_continue = version == Version::HTTP_11
        && map
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut builder = Request::builder().method(method).uri(uri).version(version);
    if let Some(h) = builder.headers_mut() {
        *h = map;
    }
    let (parts, ()) = builder
        .body(())
        .map_err(|_| Bad::Malformed("malformed request head"))?
        .into_parts();
    let head = Head {
        parts,
        body,
        keep_alive,
        expect_continue,
    };
    Ok(Some((head, len)))
}

/// The one rule for a body's length: chunked if `Transfer-Encoding` says exactly that, else
/// `Content-Length`, else none. Anything another server could read differently is refused:
/// both headers at once, a coding other than `chunked` alone, a coding in HTTP/1.0, several
/// or non-numeric lengths.
fn body_kind(h: &HeaderMap, version: Version) -> Result<BodyKind, Bad> {
    let codings: Vec<&HeaderValue> = h.get_all(TRANSFER_ENCODING).iter().collect();
    let lengths: Vec<&HeaderValue> = h.get_all(CONTENT_LENGTH).iter().collect();
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err(Bad::Malformed(
                "Content-Length and Transfer-Encoding together",
            ));
        }
        if version == Version::HTTP_10 {
            return Err(Bad::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
        }
        let only_chunked = codings.len() == 1
            && codings[0]
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        if !only_chunked {
            return Err(Bad::Malformed("Transfer-Encoding other than chunked alone"));
        }
        return Ok(BodyKind::Chunked);
    }
    match lengths.as_slice() {
        [] => Ok(BodyKind::None),
        [one] => {
            let digits = one.as_bytes();
            if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(Bad::Malformed("malformed Content-Length"));
            }
            let n: u64 = one
                .to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Bad::Malformed("malformed Content-Length"))?;
            Ok(if n == 0 {
                BodyKind::None
            } else {
                BodyKind::Length(n)
            })
        }
        _ => Err(Bad::Malformed("more than one Content-Length")),
    }
}

/// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 closes unless told
/// `keep-alive`.
fn keep_alive(h: &HeaderMap, version: Version) -> bool {
    let has = |token: &str| {
        h.get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match version {
        Version::HTTP_10 => has("keep-alive") && !has("close"),
        _ => !has("close"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, Bad> {
        let (head, len) = parse(text.as_bytes())?.expect("complete");
        assert_eq!(len, text.len());
        Ok(head)
    }

    #[test]
    fn a_plain_request_is_parsed_whole() {
        let h = head("GET /api/leads?q=ada HTTP/1.1\r\nHost: x\r\nCookie: a=b\r\n\r\n").unwrap();
        assert_eq!(h.parts.method, Method::GET);
        assert_eq!(h.parts.uri.path(), "/api/leads");
        assert_eq!(h.parts.uri.query(), Some("q=ada"));
        assert_eq!(h.parts.version, Version::HTTP_11);
        assert_eq!(h.parts.headers["cookie"], "a=b");
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().map(|_| ()),
            None
        );
    }

    #[test]
    fn the_body_length_follows_one_rule() {
        let kind =
            |extra: &str| head(&format!("POST /webhook HTTP/1.1\r\n{extra}\r\n")).map(|h| h.body);
        assert_eq!(kind("Content-Length: 12\r\n"), Ok(BodyKind::Length(12)));
        assert_eq!(kind("Content-Length: 0\r\n"), Ok(BodyKind::None));
        assert_eq!(
            kind("Transfer-Encoding: chunked\r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            kind("transfer-encoding:  Chunked \r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(kind(""), Ok(BodyKind::None));
    }

    #[test]
    fn heads_that_two_servers_could_read_two_ways_are_refused() {
        for extra in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: xchunked\r\n",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length: 5, 5\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 99999999999999999999\r\n",
            "Content-Length: \r\n",
        ] {
            let r = head(&format!("POST /webhook HTTP/1.1\r\n{extra}\r\n"));
            assert!(matches!(r, Err(Bad::Malformed(_))), "{extra:?}: {r:?}");
        }
        let r = head("POST /webhook HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(r, Err(Bad::Malformed(_))), "{r:?}");
        for target in ["CONNECT 127.0.0.1:22", "GET example.com:443"] {
            let r = head(&format!("{target} HTTP/1.1\r\nHost: a\r\n\r\n"));
            assert!(matches!(r, Err(Bad::Malformed(_))), "{target}: {r:?}");
        }
        // A header folded over two lines, a space before the colon, a bare CR.
        for raw in [
            "POST /webhook HTTP/1.1\r\nContent-Length: 5\r\n chunked\r\n\r\n",
            "POST /webhook HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            "POST /webhook HTTP/1.1\r\nX: a\rb\r\n\r\n",
        ] {
            assert!(parse(raw.as_bytes()).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let ka = |req: &str| head(req).unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn expect_continue_is_an_http_1_1_thing() {
        let h = head("POST /webhook HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.unwrap().expect_continue);
        let h = head("POST /webhook HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(!h.unwrap().expect_continue);
    }

    #[test]
    fn too_many_headers_is_its_own_refusal() {
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        let r = parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
        assert_eq!(r.map(|_| ()), Err(Bad::TooLarge));
    }
}
