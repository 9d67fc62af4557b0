// Links made from lead answers, which are untrusted: an href only for a value that is plainly
// an address or a phone number, with a scheme fixed here, so a link can never become script
// and a mailto: can never carry a copy to someone else, a subject or a body.
// Pure functions: no DOM, no state.

// A plain address: letters, digits and . _ + ' - before the @, a dotted domain after it.
// Nothing that a mailto: URL would read as more than the address (? & % # , ; and the like).
const PLAIN_ADDRESS = /^[\p{L}\p{N}._+'-]+@(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?\.)+[\p{L}]{2,}$/u;
// Digits with the separators people write, an optional leading +.
const PHONE = /^\+?[\d\s().-]{4,40}$/;

// 'mailto:…' or 'tel:…' for a value of `kind` ('email' or 'phone'), or null.
export function linkFor(kind, value) {
  const s = String(value);
  if (kind === 'email' && s.length <= 254 && PLAIN_ADDRESS.test(s)) return 'mailto:' + s;
  if (kind === 'phone' && PHONE.test(s)) {
    const digits = s.replace(/[^\d+]/g, '');
    if (/^\+?\d{4,}$/.test(digits)) return 'tel:' + digits;
  }
  return null;
}
