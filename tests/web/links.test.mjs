// Links made from lead answers (web/links.js): only plain addresses and phone numbers, never a
// mailto: that adds recipients, a subject or a body.
//   node --test tests/web/

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { linkFor } from '../../web/links.js';

test('a plain address becomes a mailto: of exactly that address', () => {
  for (const s of ['ada@example.com', 'ada.lovelace+leads@mail.example.co.uk', "o'brien@example.ie", 'zoë@exämple.de']) {
    assert.equal(linkFor('email', s), 'mailto:' + s, s);
  }
});

test('anything more than an address is no link at all', () => {
  for (const s of [
    'ada@example.com?bcc=thief@evil.example',
    'ada@example.com?subject=Invoice&body=pay%20here',
    'ada@example.com%0ABcc:thief@evil.example',
    'ada@example.com&cc=thief@evil.example',
    'ada@example.com,thief@evil.example',
    'ada@example.com;thief@evil.example',
    'ada@example.com#x',
    'ada@example.com\nBcc: thief@evil.example',
    'ada @example.com',
    'javascript:alert(1)//@example.com',
    'ada@localhost',
    '@example.com',
    'ada@',
    'a'.repeat(250) + '@example.com',
  ]) {
    assert.equal(linkFor('email', s), null, JSON.stringify(s));
  }
});

test('a phone number becomes a tel: of its digits and nothing else does', () => {
  assert.equal(linkFor('phone', '+44 (20) 7946-0958'), 'tel:+442079460958');
  assert.equal(linkFor('phone', '020 7946 0958'), 'tel:02079460958');
  for (const s of ['call me', '+44;ext=12', 'tel:+4412345', '12', '+1 555 0100?x', '1'.repeat(41), '+ - ( )']) {
    assert.equal(linkFor('phone', s), null, JSON.stringify(s));
  }
});

test('other answers are never links', () => {
  assert.equal(linkFor(null, 'ada@example.com'), null);
  assert.equal(linkFor('name', '+44 20 7946 0958'), null);
});
