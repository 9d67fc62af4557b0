//! `meta::signature::verify` on arbitrary secrets, headers and bodies.
//!
//! Input layout: 1 byte secret length, the secret, 1 byte header length, the header (lossy
//! UTF-8, as a header value would arrive as text), then the body. Checks: no panic; a header
//! passes only if it is the right signature (hex in any case, `sha256=` or `SHA256=`, outer
//! whitespace); the right signature always passes; a changed body never does.
#![no_main]

use leadstream::ingest::signature::{sign, verify, SignatureError};
use libfuzzer_sys::fuzz_target;

fn take<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let Some((&n, rest)) = data.split_first() else {
        return &[];
    };
    let n = (n as usize).min(rest.len());
    let (head, tail) = rest.split_at(n);
    *data = tail;
    head
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let secret = take(&mut data);
    let header = String::from_utf8_lossy(take(&mut data)).into_owned();
    let body = data;

    let right = sign(secret, body);
    if verify(secret, body, Some(&header)).is_ok() {
        let h = header.trim();
        assert!(
            h.eq_ignore_ascii_case(&right),
            "{header:?} passed for {right}"
        );
    }
    assert_eq!(verify(secret, body, Some(&right)), Ok(()));
    assert_eq!(verify(secret, body, None), Err(SignatureError::Missing));
    if let Some((first, rest)) = body.split_first() {
        let changed = [&[first ^ 0x01][..], rest].concat();
        assert_eq!(
            verify(secret, &changed, Some(&right)),
            Err(SignatureError::Mismatch)
        );
    }
});
