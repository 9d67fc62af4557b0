// The list of leads: one page of the current view from the server, more on "Load more", and
// arrivals put at the top (or left to the server to place when the view is filtered or sorted
// otherwise, so a lead that does not match never shows). Each row is a copy of
// <template id="lead-row">.

import { api } from './api.js';
import { formLabel } from './catalog.js';
import { byId, fillCell, fromTemplate } from './dom.js';
import { soon } from './events.js';
import { fmtFullTime, fmtNum, fmtTime } from './format.js';
import { forget, knownLead, leadEmail, leadName, leadPhone, remember } from './leads.js';
import { toast } from './toasts.js';
import * as viewState from './view-state.js';

const PAGE_SIZE = 100;
const MAX_LIMIT = 1000; // the server's largest page

const rows = [];         // leads in display order
const shown = new Set(); // their ids
let total = 0;           // leads in the view, as the server last counted them
let seq = 0;             // guards against out-of-order list answers
let loading = false;

const el = {
  leads: byId('leads'),
  totalCount: byId('total-count'),
  loadMore: byId('load-more'),
  empty: byId('empty'),
  listError: byId('list-error'),
};

function fillTime(td, iso) {
  const t = td.querySelector('time');
  t.textContent = fmtTime(iso);
  if (iso) {
    t.setAttribute('datetime', String(iso));
    t.title = fmtFullTime(iso);
  }
}

function renderRow(lead, fresh) {
  const tr = fromTemplate('lead-row');
  if (fresh) tr.classList.add('fresh');
  tr.dataset.leadId = String(lead.id);
  fillCell(tr.querySelector('.col-name'), leadName(lead), '(no name)');
  fillCell(tr.querySelector('.col-email'), leadEmail(lead), '—');
  fillCell(tr.querySelector('.col-phone'), leadPhone(lead), '—');
  fillCell(tr.querySelector('.col-form'), formLabel(lead), '—');
  fillTime(tr.querySelector('.col-created'), lead.created_time);
  fillTime(tr.querySelector('.col-received'), lead.received_at);
  return tr;
}

function updateFooter() {
  const n = rows.length;
  const all = Math.max(total, n);
  el.totalCount.dataset.shown = String(n);
  el.totalCount.dataset.total = String(all);
  el.totalCount.textContent = all === 0 ? '' : fmtNum(n) + ' of ' + fmtNum(all) + (all === 1 ? ' lead' : ' leads');
  el.loadMore.hidden = n >= all;
  el.empty.hidden = n > 0 || loading;
  el.empty.textContent = viewState.filtersActive()
    ? 'No leads match these filters.'
    : 'No leads yet. They appear here the moment Meta sends them.';
}

// Adds the leads not shown yet to `frag`.
function renderNew(leads, frag) {
  for (const lead of leads) {
    const id = Number(lead.id);
    remember(lead);
    if (shown.has(id)) continue;
    shown.add(id);
    rows.push(lead);
    frag.appendChild(renderRow(lead, false));
  }
}

function showError(msg) {
  el.listError.textContent = msg || '';
  el.listError.hidden = !msg;
}

// Reloads the list from the top. keepSize keeps as many rows as are loaded now (for refreshes).
export async function reload({ keepSize = false } = {}) {
  const limit = keepSize ? Math.min(MAX_LIMIT, Math.max(PAGE_SIZE, rows.length)) : PAGE_SIZE;
  const mine = ++seq;
  loading = true;
  el.leads.setAttribute('aria-busy', 'true');
  try {
    const data = await api('/api/leads?' + viewState.listParams({ limit, offset: 0 }));
    if (mine !== seq) return;
    total = Number(data.total) || 0;
    rows.length = 0;
    shown.clear();
    const frag = document.createDocumentFragment();
    renderNew(Array.isArray(data.leads) ? data.leads : [], frag);
    el.leads.replaceChildren(frag);
    showError('');
  } catch (e) {
    if (mine !== seq || (e && e.status === 401)) return;
    showError('Could not load leads: ' + e.message);
  } finally {
    if (mine === seq) {
      loading = false;
      el.leads.removeAttribute('aria-busy');
      updateFooter();
    }
  }
}

async function loadMore() {
  const mine = seq;
  el.loadMore.disabled = true;
  try {
    const data = await api('/api/leads?' + viewState.listParams({ limit: PAGE_SIZE, offset: rows.length }));
    if (mine !== seq) return;
    total = Number(data.total) || total;
    const frag = document.createDocumentFragment();
    renderNew(Array.isArray(data.leads) ? data.leads : [], frag);
    el.leads.appendChild(frag);
  } catch (e) {
    if (e && e.status !== 401) toast('Could not load more leads: ' + e.message, 'error');
  } finally {
    el.loadMore.disabled = false;
    updateFooter();
  }
}

const reloadSoon = soon(() => reload({ keepSize: true }), 400);

// A lead that has just arrived.
export function add(lead) {
  const id = Number(lead.id);
  remember(lead);
  if (shown.has(id)) return;
  if (viewState.isDefaultView()) {
    shown.add(id);
    rows.unshift(lead);
    total += 1;
    el.leads.prepend(renderRow(lead, true));
    updateFooter();
  } else {
    reloadSoon();
  }
}

// A lead that was erased: its row goes, and the page forgets what it held.
export function remove(id) {
  id = Number(id);
  forget(id);
  if (!shown.has(id)) return;
  shown.delete(id);
  const at = rows.findIndex((lead) => Number(lead.id) === id);
  if (at >= 0) rows.splice(at, 1);
  total = Math.max(0, total - 1);
  for (const tr of el.leads.querySelectorAll('tr')) {
    if (tr.dataset.leadId === String(id)) tr.remove();
  }
  updateFooter();
}

// Rows drawn before the form names were known show ids; fills the names in.
export function refreshFormLabels() {
  for (const tr of el.leads.children) {
    const lead = knownLead(tr.dataset.leadId);
    const td = tr.querySelector('.col-form');
    if (lead && td && !lead.form_name && lead.form_id) {
      const label = formLabel(lead);
      if (td.textContent !== label) fillCell(td, label, '—');
    }
  }
}

// Calls fn(id) when a row is clicked or chosen with Enter or Space.
export function onOpenLead(fn) {
  el.leads.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    const tr = ev.target.closest('tr[data-lead-id]');
    if (tr) fn(tr.dataset.leadId);
  });
  el.leads.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' && ev.key !== ' ') return;
    const tr = ev.target.closest('tr[data-lead-id]');
    if (!tr || ev.target !== tr) return;
    ev.preventDefault();
    fn(tr.dataset.leadId);
  });
}

el.loadMore.addEventListener('click', loadMore);
