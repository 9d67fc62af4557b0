// The view: the search, the filters and the sort order. It lives in the address bar, so a view
// can be shared, bookmarked and reloaded (the server carries these same parameters through
// signing in). Whatever depends on the view listens for "change"; nothing here touches the page
// beyond the address bar.

import { Emitter } from './events.js';

const SORT_KEYS = ['created_time', 'received_at', 'name'];
const FILTER_KEYS = ['q', 'form_id', 'page_id', 'since', 'until', 'status', 'owner'];
export const STATUSES = ['new', 'contacted', 'qualified', 'won', 'lost'];
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
const DEFAULT_SORT = 'received_at';

export const isDay = (s) => DATE_RE.test(s || '');

const defaultOrder = (sort) => (sort === 'name' ? 'asc' : 'desc');

const current = { q: '', form_id: '', page_id: '', since: '', until: '', status: '', owner: '', sort: DEFAULT_SORT, order: 'desc' };
const events = new Emitter();

// The view as it is now. Read it; change it through set(), sortBy() or clearFilters().
export const view = () => current;

export const onChange = (fn) => events.on('change', fn);

// Sets some of q, form_id, page_id, since, until, status, owner; tells the listeners if anything changed.
export function set(patch) {
  let changed = false;
  for (const k of FILTER_KEYS) {
    if (k in patch && patch[k] !== current[k]) {
      current[k] = patch[k];
      changed = true;
    }
  }
  if (changed) announce();
}

export function clearFilters() {
  for (const k of FILTER_KEYS) current[k] = '';
  announce();
}

// A click on a column header: sort by it, or reverse the order when it already is the sort.
export function sortBy(key) {
  if (!SORT_KEYS.includes(key)) return;
  if (current.sort === key) {
    current.order = current.order === 'asc' ? 'desc' : 'asc';
  } else {
    current.sort = key;
    current.order = defaultOrder(key);
  }
  announce();
}

function announce() {
  writeUrl();
  events.emit('change', current);
}

export function filtersActive() {
  return FILTER_KEYS.some((k) => current[k]);
}

// Newest first with no filters: a lead that arrives belongs at the top.
export function isDefaultView() {
  return !filtersActive() && current.sort === DEFAULT_SORT && current.order === 'desc';
}

// The filters as query parameters, plus `extra` (empty values left out).
export function filterParams(extra) {
  const p = new URLSearchParams();
  for (const k of FILTER_KEYS) {
    if (current[k]) p.set(k, current[k]);
  }
  if (extra) {
    for (const k in extra) {
      if (extra[k] !== undefined && extra[k] !== null && extra[k] !== '') p.set(k, String(extra[k]));
    }
  }
  return p;
}

// Filters and sort order, plus `extra`: what the list and the exports ask for.
export function listParams(extra) {
  return filterParams(Object.assign({ sort: current.sort, order: current.order }, extra));
}

// Takes the view from the address bar, then writes it back cleaned: that drops unknown
// parameters (e.g. a sign-in token) and values that are not valid.
export function loadFromUrl() {
  const p = new URLSearchParams(location.search);
  current.q = (p.get('q') || '').trim();
  current.form_id = p.get('form_id') || '';
  current.page_id = p.get('page_id') || '';
  current.since = isDay(p.get('since')) ? p.get('since') : '';
  current.until = isDay(p.get('until')) ? p.get('until') : '';
  current.status = STATUSES.includes(p.get('status')) ? p.get('status') : '';
  current.owner = (p.get('owner') || '').trim();
  const sort = p.get('sort');
  current.sort = SORT_KEYS.includes(sort) ? sort : DEFAULT_SORT;
  const order = p.get('order');
  current.order = order === 'asc' || order === 'desc' ? order : defaultOrder(current.sort);
  writeUrl();
}

function writeUrl() {
  const p = filterParams();
  if (current.sort !== DEFAULT_SORT || current.order !== 'desc') {
    p.set('sort', current.sort);
    p.set('order', current.order);
  }
  const qs = p.toString();
  const url = location.pathname + (qs ? '?' + qs : '') + location.hash;
  if (url !== location.pathname + location.search + location.hash) {
    history.replaceState(null, '', url);
  }
}
