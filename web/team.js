// Working the leads as a team: who is signed in, the people a lead can go to, and the changes
// (status, owner, a note). A change names the version it was made on; when someone else changed
// the lead meanwhile the server answers 409 with the lead as it is now, which comes back here
// as a Conflict so the page can show what changed and let the user try again.

import { api } from './api.js';
import { Emitter } from './events.js';

export const STATUSES = ['new', 'contacted', 'qualified', 'won', 'lost'];
const LABELS = { new: 'New', contacted: 'Contacted', qualified: 'Qualified', won: 'Won', lost: 'Lost' };

export const statusLabel = (s) => LABELS[s] || String(s || '');

const events = new Emitter();
let me = { name: '', role: 'member' };
let users = [];

export const whoAmI = () => me;
export const people = () => users;
export const onPeople = (fn) => events.on('people', fn);

// The signed-in user and everyone a lead can be given to (the token's `admin` too).
export async function load() {
  try {
    const data = await api('/api/users');
    me = data.me || me;
    const names = (Array.isArray(data.users) ? data.users : []).map((u) => String(u.name));
    if (!names.some((n) => n.toLowerCase() === 'admin')) names.push('admin');
    users = names.sort((a, b) => a.localeCompare(b));
    events.emit('people', users);
  } catch (_) {
    // The list only fills the pickers; the page works without it.
  }
}

export class Conflict extends Error {
  constructor(lead) {
    super('Someone else changed this lead meanwhile.');
    this.lead = lead;
  }
}

// PATCH /api/leads/{id}: `patch` is {status?, owner?}; resolves to the lead as it is now.
export async function change(lead, patch) {
  try {
    return await api('/api/leads/' + encodeURIComponent(String(lead.id)), {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(Object.assign({}, patch, { version: lead.version })),
    });
  } catch (e) {
    if (e && e.status === 409 && e.body && e.body.id !== undefined) throw new Conflict(e.body);
    throw e;
  }
}

export const claim = (lead) => change(lead, { owner: me.name });

export function addNote(lead, text) {
  return api('/api/leads/' + encodeURIComponent(String(lead.id)) + '/notes', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ text }),
  });
}

export const detail = (id) => api('/api/leads/' + encodeURIComponent(String(id)));

// What differs between the lead the user worked on and the one the server has now, in words.
export function whatChanged(before, now) {
  const out = [];
  if (before.status !== now.status) out.push('status is now ' + statusLabel(now.status));
  if ((before.owner || null) !== (now.owner || null)) out.push(now.owner ? 'owner is now ' + now.owner : 'nobody owns it now');
  if ((before.notes_count || 0) !== (now.notes_count || 0)) out.push('a note was added');
  return out.length ? out.join(', ') : 'it was changed';
}
