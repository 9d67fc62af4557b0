// The numbers for the current view: today, the last 7 days, the total, leads per form (each a
// button that filters by its form) and per day (chart.js).

import { api } from './api.js';
import { renderChart } from './chart.js';
import { byId, fromTemplate, make } from './dom.js';
import { soon } from './events.js';
import { fmtNum, str } from './format.js';
import * as viewState from './view-state.js';

const el = {
  today: byId('stats-today'),
  week: byId('stats-week'),
  total: byId('stats-total'),
  waiting: byId('stats-waiting'),
  oldest: byId('stats-oldest'),
  scope: byId('stats-scope'),
  perForm: byId('per-form'),
};

let seq = 0; // only the latest answer is drawn

export async function load() {
  const mine = ++seq;
  el.scope.textContent = viewState.filtersActive() ? 'For the current filters' : 'All leads';
  let s;
  try {
    const p = viewState.filterParams().toString();
    s = await api('/api/stats' + (p ? '?' + p : ''));
  } catch (e) {
    return;
  }
  if (mine !== seq) return;
  el.today.textContent = fmtNum(s.today);
  el.week.textContent = fmtNum(s.last_7_days);
  el.total.textContent = fmtNum(s.total);
  const waiting = s.waiting || {};
  el.waiting.textContent = fmtNum(waiting.count || 0);
  el.oldest.textContent = waiting.count ? 'oldest waits ' + fmtWait(waiting.oldest_wait_minutes) : '';
  renderPerForm(Array.isArray(s.per_form) ? s.per_form : []);
  renderChart(Array.isArray(s.per_day) ? s.per_day : []);
}

// Minutes as "12 min", "3 h 5 min" or "2 d 4 h".
function fmtWait(minutes) {
  const m = Math.max(0, Math.round(Number(minutes) || 0));
  if (m < 60) return m + ' min';
  if (m < 1440) return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  return Math.floor(m / 1440) + ' d ' + Math.floor((m % 1440) / 60) + ' h';
}

// Once for a burst of arrivals.
export const loadSoon = soon(load, 1000);

function renderPerForm(items) {
  const max = items.reduce((m, f) => Math.max(m, Number(f.count) || 0), 0) || 1;
  const sorted = items.slice().sort((a, b) => (Number(b.count) || 0) - (Number(a.count) || 0));
  const current = viewState.view().form_id;
  const lis = sorted.map((f) => {
    const li = fromTemplate('per-form-item');
    const btn = li.querySelector('button');
    btn.dataset.formId = str(f.form_id);
    const active = current && current === str(f.form_id);
    btn.setAttribute('aria-pressed', active ? 'true' : 'false');
    const label = f.form_name ? String(f.form_name) : (f.form_id ? String(f.form_id) : 'unknown form');
    btn.title = active ? 'Show all forms' : 'Show only ' + label;
    li.querySelector('.per-form-name').textContent = label;
    li.querySelector('.per-form-count').textContent = fmtNum(f.count);
    const w = Math.max(1, Math.round(((Number(f.count) || 0) / max) * 100));
    li.querySelector('.fill').setAttribute('width', String(w));
    return li;
  });
  if (!lis.length) lis.push(make('li', 'muted small', 'No leads yet.'));
  el.perForm.replaceChildren(...lis);
}

// A click on a form shows only its leads; a click on the chosen one shows all again.
el.perForm.addEventListener('click', (ev) => {
  const btn = ev.target.closest('button[data-form-id]');
  if (!btn) return;
  const id = btn.dataset.formId;
  viewState.set({ form_id: viewState.view().form_id === id ? '' : id });
});
