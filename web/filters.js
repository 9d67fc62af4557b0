// The controls that choose the view (search box, form, page, status, owner and date filters, sortable column
// headers) and the export links that follow it. Input goes to view-state.js; showView() puts the
// view back into the controls.

import { byId, make } from './dom.js';
import { debounce } from './events.js';
import { fmtNum, str } from './format.js';
import * as viewState from './view-state.js';

const SEARCH_DEBOUNCE_MS = 250;

const el = {
  form: byId('filters'),
  search: byId('search'),
  formSel: byId('filter-form'),
  pageSel: byId('filter-page'),
  statusSel: byId('filter-status'),
  ownerSel: byId('filter-owner'),
  since: byId('since'),
  until: byId('until'),
  clear: byId('clear-filters'),
  csv: byId('csv-link'),
  pdf: byId('pdf-link'),
  thead: document.querySelector('.leads-table thead'),
};

export function showView() {
  const view = viewState.view();
  if (el.search.value.trim() !== view.q) el.search.value = view.q;
  choose(el.formSel, view.form_id);
  choose(el.pageSel, view.page_id);
  choose(el.statusSel, view.status);
  choose(el.ownerSel, view.owner);
  el.since.value = view.since;
  el.until.value = view.until;
  el.clear.hidden = !viewState.filtersActive();
  for (const th of el.thead.querySelectorAll('th[data-col]')) {
    const btn = th.querySelector('button[data-sort]');
    if (!btn) continue;
    const active = btn.dataset.sort === view.sort;
    th.setAttribute('aria-sort', active ? (view.order === 'asc' ? 'ascending' : 'descending') : 'none');
    btn.dataset.active = active ? view.order : '';
  }
  const p = viewState.listParams().toString();
  el.csv.setAttribute('href', '/api/leads.csv' + (p ? '?' + p : ''));
  el.pdf.setAttribute('href', '/api/report.pdf' + (p ? '?' + p : ''));
}

// Selects `value`, adding it first when it is in the URL but not (yet) in the list.
function choose(select, value) {
  if (value && ![...select.options].some((o) => o.value === value)) {
    const o = make('option', null, value);
    o.value = value;
    select.appendChild(o);
  }
  select.value = value;
}

function option(value, text, title) {
  const o = make('option', null, text);
  o.value = value;
  if (title) o.title = title;
  return o;
}

// forms: [{form_id, form_name, count}] from /api/forms.
export function showForms(forms) {
  const sorted = forms.slice().sort((a, b) =>
    (a.form_name || a.form_id || '').toString().localeCompare((b.form_name || b.form_id || '').toString()));
  el.formSel.replaceChildren(
    option('', 'All forms'),
    ...sorted.map((f) => option(str(f.form_id), (f.form_name ? f.form_name : f.form_id) + ' (' + fmtNum(f.count) + ')',
      f.form_name ? 'Form ' + str(f.form_id) : null)),
  );
  choose(el.formSel, viewState.view().form_id);
}

// pages: [{page_id, count}] from /api/pages.
export function showPages(pages) {
  el.pageSel.replaceChildren(
    option('', 'All pages'),
    ...pages.map((p) => option(str(p.page_id), str(p.page_id) + ' (' + fmtNum(p.count) + ')')),
  );
  choose(el.pageSel, viewState.view().page_id);
}

const searchTyped = () => viewState.set({ q: el.search.value.trim() });
el.search.addEventListener('input', debounce(searchTyped, SEARCH_DEBOUNCE_MS));
el.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  searchTyped();
});
el.formSel.addEventListener('change', () => viewState.set({ form_id: el.formSel.value }));
el.pageSel.addEventListener('change', () => viewState.set({ page_id: el.pageSel.value }));
el.statusSel.addEventListener('change', () => viewState.set({ status: el.statusSel.value }));
el.ownerSel.addEventListener('change', () => viewState.set({ owner: el.ownerSel.value }));

// The owner filter: anyone, mine, nobody's, or one person's.
export function showPeople(names) {
  el.ownerSel.replaceChildren(
    option('', 'Anyone'), option('me', 'Mine'), option('none', "Nobody's"),
    ...names.map((n) => option(n, n)),
  );
  choose(el.ownerSel, viewState.view().owner);
}
for (const [input, key] of [[el.since, 'since'], [el.until, 'until']]) {
  input.addEventListener('change', () => viewState.set({ [key]: viewState.isDay(input.value) ? input.value : '' }));
}
el.clear.addEventListener('click', () => {
  viewState.clearFilters();
  el.search.focus();
});
el.thead.addEventListener('click', (ev) => {
  const btn = ev.target.closest('button[data-sort]');
  if (btn) viewState.sortBy(btn.dataset.sort);
});

// "/" jumps to the search box, unless typing somewhere or a dialog is open.
document.addEventListener('keydown', (ev) => {
  if (ev.key !== '/' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  if (document.querySelector('dialog[open]')) return;
  ev.preventDefault();
  el.search.focus();
});
