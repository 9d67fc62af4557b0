// One lead in full: where the team is with it (status, owner, notes, history), every answer
// Meta sent, and where it came from. A <dialog>.

import { formLabel } from './catalog.js';
import { byId, make } from './dom.js';
import { Emitter } from './events.js';
import { fmtFullTime, humanize, str } from './format.js';
import { knownLead, leadEmail, leadName, remember } from './leads.js';
import { linkFor } from './links.js';
import * as team from './team.js';

const el = {
  detail: byId('lead-detail'),
  title: byId('detail-title'),
  answers: byId('detail-answers'),
  meta: byId('detail-meta'),
  close: byId('detail-close'),
  conflict: byId('detail-conflict'),
  status: byId('detail-status'),
  owner: byId('detail-owner'),
  claim: byId('detail-claim'),
  notes: byId('detail-notes'),
  history: byId('detail-history'),
  noteForm: byId('note-form'),
  noteText: byId('note-text'),
};

const events = new Emitter();
// A change made here: the lead as it is now (the list draws it again).
export const onChanged = (fn) => events.on('changed', fn);

let current = null; // the lead shown, as the page last knew it
let loadSeq = 0;


// One <div class="kv-row"><dt>key</dt><dd>value</dd>…</div>; several values, several <dd>s.
function kv(dl, key, value, opts = {}) {
  const wrap = make('div', 'kv-row');
  const dt = make('dt', null, key);
  if (opts.keyTitle) dt.title = opts.keyTitle;
  wrap.appendChild(dt);
  const values = (Array.isArray(value) ? value : [value])
    .filter((v) => v !== undefined && v !== null && String(v) !== '');
  if (!values.length) wrap.appendChild(make('dd', 'none', '—'));
  for (const v of values) {
    const dd = make('dd');
    const s = String(v);
    const link = linkFor(opts.kind, s);
    if (link) {
      const a = make('a', null, s);
      a.setAttribute('href', link);
      dd.appendChild(a);
    } else {
      dd.textContent = s;
    }
    if (opts.sub) dd.appendChild(make('span', 'sub', opts.sub));
    wrap.appendChild(dd);
  }
  dl.appendChild(wrap);
}

// The people a lead can go to, in the owner picker.
export function showPeople(names) {
  const keep = el.owner.value;
  el.owner.replaceChildren(new Option('Nobody', ''), ...names.map((n) => new Option(n, n)));
  if (current) setOwner(current.owner);
  else el.owner.value = keep;
}

function setOwner(owner) {
  const name = owner ? String(owner) : '';
  if (name && ![...el.owner.options].some((o) => o.value === name)) el.owner.appendChild(new Option(name, name));
  el.owner.value = name;
}

// Status, owner and the claim button as `lead` has them.
function showWork(lead) {
  current = lead;
  el.status.value = String(lead.status || 'new');
  setOwner(lead.owner);
  el.claim.hidden = Boolean(lead.owner) && lead.owner === team.whoAmI().name;
}

function showConflict(msg) {
  el.conflict.textContent = msg || '';
  el.conflict.hidden = !msg;
}

// Notes and history come with GET /api/leads/{id}.
async function loadDetail(id) {
  const mine = ++loadSeq;
  let d;
  try {
    d = await team.detail(id);
  } catch (_) {
    return;
  }
  if (mine !== loadSeq || !current || Number(current.id) !== Number(id)) return;
  const notes = Array.isArray(d.notes) ? d.notes : [];
  el.notes.replaceChildren(...notes.map((n) => {
    const li = make('li');
    li.appendChild(make('p', 'note-text', str(n.text)));
    li.appendChild(make('span', 'muted small', str(n.author) + ' · ' + fmtFullTime(n.created_at)));
    return li;
  }));
  if (!notes.length) el.notes.appendChild(make('li', 'muted small', 'No notes yet.'));
  const history = Array.isArray(d.history) ? d.history : [];
  el.history.replaceChildren(...history.map((h) => {
    const what = h.field === 'status'
      ? 'status ' + team.statusLabel(h.from) + ' → ' + team.statusLabel(h.to)
      : (h.to ? 'owner → ' + str(h.to) : 'released');
    return make('li', 'small', fmtFullTime(h.at) + ' · ' + str(h.by) + ': ' + what);
  }));
  if (!history.length) el.history.appendChild(make('li', 'muted small', 'No changes yet.'));
}

// A lead changed (here, or by someone else on the stream): what is shown follows it.
export function leadChanged(lead) {
  if (!current || Number(current.id) !== Number(lead.id) || !el.detail.open) return;
  showWork(lead);
  loadDetail(lead.id);
}

async function apply(patch) {
  if (!current) return;
  const before = current;
  try {
    const lead = await team.change(before, patch);
    showConflict('');
    remember(lead);
    showWork(lead);
    events.emit('changed', lead);
    loadDetail(lead.id);
  } catch (e) {
    if (e instanceof team.Conflict) {
      // Someone else got there first: show their version, say what it was; the user may retry.
      remember(e.lead);
      showWork(e.lead);
      events.emit('changed', e.lead);
      loadDetail(e.lead.id);
      showConflict('Not saved: someone else changed this lead meanwhile (' + team.whatChanged(before, e.lead) + '). Choose again to retry.');
    } else if (e && e.status !== 401) {
      showWork(before);
      showConflict('Not saved: ' + e.message);
    }
  }
}

el.status.addEventListener('change', () => apply({ status: el.status.value }));
el.owner.addEventListener('change', () => apply({ owner: el.owner.value || null }));
el.claim.addEventListener('click', () => apply({ owner: team.whoAmI().name }));
el.noteForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = el.noteText.value;
  if (!current || !text.trim()) return;
  try {
    await team.addNote(current, text);
    el.noteText.value = '';
    showConflict('');
    loadDetail(current.id);
  } catch (e) {
    if (e && e.status !== 401) showConflict('The note was not saved: ' + e.message);
  }
});

export function openDetail(lead) {
  if (!lead) return;
  lead = knownLead(lead.id) || lead;
  showConflict('');
  showWork(lead);
  el.notes.replaceChildren();
  el.history.replaceChildren();
  loadDetail(lead.id);
  el.detail.dataset.leadId = String(lead.id);
  el.title.textContent = leadName(lead) || leadEmail(lead) || 'Lead ' + str(lead.id);

  el.answers.replaceChildren();
  const answers = Array.isArray(lead.field_data) ? lead.field_data : [];
  for (const f of answers) {
    if (!f) continue;
    const key = str(f.name);
    const kind = /e-?mail/i.test(key) ? 'email' : /phone/i.test(key) ? 'phone' : null;
    kv(el.answers, humanize(key), Array.isArray(f.values) ? f.values : [f.values], { keyTitle: key, kind });
  }
  if (!answers.length) el.answers.appendChild(make('div', 'muted', 'This lead has no answers.'));

  el.meta.replaceChildren();
  const form = formLabel(lead);
  kv(el.meta, 'Form', form, { sub: form && lead.form_id && form !== str(lead.form_id) ? 'id ' + str(lead.form_id) : null });
  kv(el.meta, 'Created', fmtFullTime(lead.created_time), { sub: str(lead.created_time) });
  kv(el.meta, 'Received', fmtFullTime(lead.received_at), { sub: str(lead.received_at) });
  kv(el.meta, 'Came in by', str(lead.source));
  kv(el.meta, 'Lead id (Meta)', str(lead.leadgen_id));
  kv(el.meta, 'Page id', str(lead.page_id));
  kv(el.meta, 'Ad id', str(lead.ad_id));
  kv(el.meta, 'Ad set id', str(lead.adgroup_id));
  kv(el.meta, 'Campaign id', str(lead.campaign_id));
  kv(el.meta, 'Row id', str(lead.id));

  if (typeof el.detail.showModal === 'function') {
    if (!el.detail.open) el.detail.showModal();
  } else {
    el.detail.setAttribute('open', '');
  }
  el.close.focus();
}

// The lead shown was erased: the dialog closes and keeps nothing of it.
export function closeDetailOf(id) {
  if (el.detail.dataset.leadId !== String(id)) return;
  closeDetail();
  delete el.detail.dataset.leadId;
  el.title.textContent = '';
  el.answers.replaceChildren();
  el.meta.replaceChildren();
}

function closeDetail() {
  if (typeof el.detail.close === 'function' && el.detail.open) el.detail.close();
  else el.detail.removeAttribute('open');
}

el.close.addEventListener('click', closeDetail);
el.detail.addEventListener('click', (ev) => {
  // A click on the backdrop lands on the dialog element itself.
  if (ev.target === el.detail) closeDetail();
});
