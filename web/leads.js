// Leads as this page reads them: a name, an email and a phone picked out of Meta's free-form
// answers, and every lead the page has loaded or been sent, by id (the detail view and the
// toasts open a lead by its id, also one the current filters hide).

const known = new Map();

export function remember(lead) {
  known.set(Number(lead.id), lead);
}

export function forget(id) {
  known.delete(Number(id));
}

export function knownLead(id) {
  return known.get(Number(id));
}

function field(lead, key) {
  const f = lead && lead.fields;
  return f && typeof f === 'object' && f[key] !== undefined && f[key] !== null ? String(f[key]) : '';
}

export function leadName(lead) {
  const full = field(lead, 'full_name').trim();
  if (full) return full;
  return (field(lead, 'first_name') + ' ' + field(lead, 'last_name')).trim();
}

export function leadEmail(lead) {
  return field(lead, 'email');
}

export function leadPhone(lead) {
  return field(lead, 'phone_number') || field(lead, 'phone');
}

// Who a lead is, in a word or two, for a toast.
export function leadWho(lead) {
  return leadName(lead) || leadEmail(lead) || leadPhone(lead) || 'someone';
}
