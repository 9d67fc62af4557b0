// leadstream dashboard.
//
// Plain script, no build step, served under a strict CSP (script-src 'self', style-src 'self'),
// so: no inline styles, no innerHTML. Lead values come from strangers filling in a form, so every
// piece of lead data reaches the DOM through createElement + textContent (or setAttribute on
// attributes that cannot execute), never through an HTML parser.
//
// Freshness, in order of preference:
//   1. EventSource on /api/stream (live).
//   2. When it errors: close it, check /api/leads/count every 3 s, fetch what is new, and try to
//      reopen the stream from the last seen id on every check (checking / offline).
//   3. A full refresh every 60 s whatever happens.
// `shown` (ids in the list) and `maxId` (highest id seen anywhere) keep a lead from showing or
// toasting twice, whichever path delivered it.
'use strict';

(function () {
  const PAGE_SIZE = 100;
  const MAX_LIMIT = 1000;
  const POLL_MS = 3000;
  const FULL_REFRESH_MS = 60000;
  const STATUS_MS = 20000;
  const SEARCH_DEBOUNCE_MS = 250;
  const TOAST_MS = 6000;
  const MAX_TOASTS = 6;
  const SORT_KEYS = ['created_time', 'received_at', 'name'];
  const FILTER_KEYS = ['q', 'form_id', 'page_id', 'since', 'until'];
  const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const el = {
    leads: $('leads'),
    toasts: $('toasts'),
    search: $('search'),
    filters: $('filters'),
    formSel: $('filter-form'),
    pageSel: $('filter-page'),
    since: $('since'),
    until: $('until'),
    clear: $('clear-filters'),
    sync: $('sync-button'),
    conn: $('conn-status'),
    today: $('stats-today'),
    week: $('stats-week'),
    total: $('stats-total'),
    statsScope: $('stats-scope'),
    chart: $('per-day-chart'),
    perForm: $('per-form'),
    csv: $('csv-link'),
    pdf: $('pdf-link'),
    dead: $('dead-letters'),
    deadBox: $('dead-letters-box'),
    retry: $('retry-dead'),
    detail: $('lead-detail'),
    detailTitle: $('detail-title'),
    detailAnswers: $('detail-answers'),
    detailMeta: $('detail-meta'),
    detailClose: $('detail-close'),
    totalCount: $('total-count'),
    loadMore: $('load-more'),
    empty: $('empty'),
    listError: $('list-error'),
    problems: $('problems'),
    problemList: $('problem-list'),
    demo: $('demo-badge'),
    lastWebhook: $('last-webhook'),
    lastSync: $('last-sync'),
    jobs: $('jobs-waiting'),
  };

  // ---- state ---------------------------------------------------------------------------------

  const view = { q: '', form_id: '', page_id: '', since: '', until: '', sort: 'received_at', order: 'desc' };
  const list = {
    rows: [],           // leads in display order
    shown: new Set(),   // ids currently in #leads
    total: 0,
    seq: 0,             // guards against out-of-order list responses
    loading: false,
  };
  const known = new Map(); // id -> lead, for the detail view and toasts
  let maxId = 0;           // highest lead id announced (toasted) or known to predate this page
  let primed = false;      // maxId has been set from /api/leads/count at least once
  let lastCount = null;    // last /api/leads/count answer's count
  let forms = new Map();   // form_id -> {form_id, form_name, page_id, count}
  let pages = [];
  let es = null;
  let connState = 'checking';
  let pollTimer = null;
  let polling = false;
  let reloading = false;
  let started = false;

  // ---- small helpers -------------------------------------------------------------------------

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const k in attrs) node.setAttribute(k, String(attrs[k]));
    return node;
  }

  function debounce(fn, ms) {
    let t = null;
    return function () {
      clearTimeout(t);
      t = setTimeout(fn, ms);
    };
  }

  // Runs fn `ms` after the first call of a burst; later calls join that run. Unlike a debounce,
  // a steady flow of leads cannot postpone it for ever.
  function soon(fn, ms) {
    let t = null;
    return function () {
      if (t) return;
      t = setTimeout(() => {
        t = null;
        fn();
      }, ms);
    };
  }

  const numFmt = new Intl.NumberFormat();
  const fmtNum = (n) => numFmt.format(Number(n) || 0);

  const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
  const fullDateTimeFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
    timeZoneName: 'short',
  });
  const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

  function parseTime(s) {
    if (!s) return null;
    const d = new Date(s);
    return isNaN(d.getTime()) ? null : d;
  }
  // The year only when it is not this year: "28 Nov, 15:25" reads faster in a long list.
  const thisYearFmt = new Intl.DateTimeFormat(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
  function fmtTime(s) {
    const d = parseTime(s);
    if (!d) return s ? String(s) : '';
    return (d.getFullYear() === new Date().getFullYear() ? thisYearFmt : dateTimeFmt).format(d);
  }
  function fmtFullTime(s) {
    const d = parseTime(s);
    return d ? fullDateTimeFmt.format(d) : (s ? String(s) : '');
  }
  function ago(s) {
    const d = parseTime(s);
    if (!d) return '';
    const secs = Math.round((Date.now() - d.getTime()) / 1000);
    if (secs < 45) return 'just now';
    const mins = Math.round(secs / 60);
    if (mins < 60) return mins + ' min ago';
    const hours = Math.round(mins / 60);
    if (hours < 48) return hours + ' h ago';
    return Math.round(hours / 24) + ' days ago';
  }
  // A "YYYY-MM-DD" day as a local date (no time zone shift).
  function dayLabel(day) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day || '');
    if (!m) return String(day || '');
    return dayFmt.format(new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  }

  function str(v) {
    return v === undefined || v === null ? '' : String(v);
  }
  function field(lead, key) {
    const f = lead && lead.fields;
    return f && typeof f === 'object' && f[key] !== undefined && f[key] !== null ? String(f[key]) : '';
  }
  function leadName(lead) {
    const full = field(lead, 'full_name').trim();
    if (full) return full;
    return (field(lead, 'first_name') + ' ' + field(lead, 'last_name')).trim();
  }
  function leadEmail(lead) {
    return field(lead, 'email');
  }
  function leadPhone(lead) {
    return field(lead, 'phone_number') || field(lead, 'phone');
  }
  function formLabel(lead) {
    if (lead.form_name) return String(lead.form_name);
    const f = lead.form_id ? forms.get(String(lead.form_id)) : null;
    if (f && f.form_name) return String(f.form_name);
    return lead.form_id ? String(lead.form_id) : '';
  }
  // "full_name" -> "Full name"
  function humanize(key) {
    const s = String(key).replace(/_/g, ' ').replace(/\s+/g, ' ').trim();
    return s ? s.charAt(0).toUpperCase() + s.slice(1) : String(key);
  }

  // ---- API -----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  function sessionGone() {
    if (reloading) return;
    reloading = true;
    stopStream();
    // The server answers GET / with the login page when the session is gone.
    location.reload();
  }

  async function api(path, options) {
    const opts = Object.assign({ credentials: 'same-origin', cache: 'no-store' }, options || {});
    opts.headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError('The server could not be reached.', 0);
    }
    if (res.status === 401) {
      sessionGone();
      throw new ApiError('Your session has ended.', 401);
    }
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (!res.ok) {
      const msg = body && typeof body.error === 'string' && body.error
        ? body.error
        : 'The server answered ' + res.status + '.';
      throw new ApiError(msg, res.status);
    }
    return body || {};
  }

  function filterParams(extra) {
    const p = new URLSearchParams();
    for (const k of FILTER_KEYS) {
      const v = view[k];
      if (v) p.set(k, v);
    }
    if (extra) {
      for (const k in extra) {
        if (extra[k] !== undefined && extra[k] !== null && extra[k] !== '') p.set(k, String(extra[k]));
      }
    }
    return p;
  }
  function sortParams() {
    return { sort: view.sort, order: view.order };
  }
  function filtersActive() {
    return FILTER_KEYS.some((k) => view[k]);
  }
  function isDefaultView() {
    return !filtersActive() && view.sort === 'received_at' && view.order === 'desc';
  }

  // ---- URL <-> view --------------------------------------------------------------------------

  function readUrl() {
    const p = new URLSearchParams(location.search);
    view.q = (p.get('q') || '').trim();
    view.form_id = p.get('form_id') || '';
    view.page_id = p.get('page_id') || '';
    view.since = DATE_RE.test(p.get('since') || '') ? p.get('since') : '';
    view.until = DATE_RE.test(p.get('until') || '') ? p.get('until') : '';
    const sort = p.get('sort');
    view.sort = SORT_KEYS.includes(sort) ? sort : 'received_at';
    const order = p.get('order');
    view.order = order === 'asc' || order === 'desc' ? order : defaultOrder(view.sort);
  }

  function defaultOrder(sort) {
    return sort === 'name' ? 'asc' : 'desc';
  }

  function writeUrl() {
    const p = filterParams();
    if (view.sort !== 'received_at' || view.order !== 'desc') {
      p.set('sort', view.sort);
      p.set('order', view.order);
    }
    const qs = p.toString();
    const url = location.pathname + (qs ? '?' + qs : '') + location.hash;
    if (url !== location.pathname + location.search + location.hash) {
      history.replaceState(null, '', url);
    }
  }

  function syncControls() {
    if (el.search.value.trim() !== view.q) el.search.value = view.q;
    ensureOption(el.formSel, view.form_id);
    el.formSel.value = view.form_id;
    ensureOption(el.pageSel, view.page_id);
    el.pageSel.value = view.page_id;
    el.since.value = view.since;
    el.until.value = view.until;
    el.clear.hidden = !filtersActive();
    for (const th of document.querySelectorAll('th[data-col]')) {
      const btn = th.querySelector('button[data-sort]');
      if (!btn) continue;
      const active = btn.dataset.sort === view.sort;
      th.setAttribute('aria-sort', active ? (view.order === 'asc' ? 'ascending' : 'descending') : 'none');
      btn.dataset.active = active ? view.order : '';
    }
    updateExportLinks();
    el.statsScope.textContent = filtersActive() ? 'For the current filters' : 'All leads';
  }

  function updateExportLinks() {
    const p = filterParams(sortParams()).toString();
    el.csv.setAttribute('href', '/api/leads.csv' + (p ? '?' + p : ''));
    el.pdf.setAttribute('href', '/api/report.pdf' + (p ? '?' + p : ''));
  }

  // Makes sure a select can show a value that is in the URL but not (yet) in the list.
  function ensureOption(select, value) {
    if (!value) return;
    for (const o of select.options) if (o.value === value) return;
    const o = make('option', null, value);
    o.value = value;
    select.appendChild(o);
  }

  function viewChanged() {
    writeUrl();
    syncControls();
    reloadList({ keepSize: false });
    loadStats();
  }

  // ---- the list ------------------------------------------------------------------------------

  // Caches a lead for the detail view. It does not move maxId: only arrive() (and priming from
  // /api/leads/count) does, so a lead that a list reload happened to show first still gets its toast.
  function remember(lead) {
    known.set(Number(lead.id), lead);
  }

  function cell(label, text, className) {
    const td = make('td', className);
    td.dataset.label = label;
    if (text) {
      td.textContent = text;
      td.title = text;
    } else {
      td.appendChild(make('span', 'none', '—'));
    }
    return td;
  }

  function timeCell(label, iso, className) {
    const td = make('td', className);
    td.dataset.label = label;
    const t = make('time', null, fmtTime(iso));
    if (iso) {
      t.setAttribute('datetime', String(iso));
      t.title = fmtFullTime(iso);
    }
    td.appendChild(t);
    return td;
  }

  function renderRow(lead, fresh) {
    const tr = make('tr', fresh ? 'lead-row fresh' : 'lead-row');
    tr.dataset.leadId = String(lead.id);
    tr.tabIndex = 0;
    const name = leadName(lead);
    const nameTd = make('td', 'col-name');
    nameTd.dataset.label = 'Name';
    if (name) {
      nameTd.textContent = name;
      nameTd.title = name;
    } else {
      nameTd.appendChild(make('span', 'none', '(no name)'));
    }
    tr.appendChild(nameTd);
    tr.appendChild(cell('Email', leadEmail(lead), 'col-email'));
    tr.appendChild(cell('Phone', leadPhone(lead), 'col-phone'));
    tr.appendChild(cell('Form', formLabel(lead), 'col-form'));
    tr.appendChild(timeCell('Created', lead.created_time, 'col-created'));
    tr.appendChild(timeCell('Received', lead.received_at, 'col-received'));
    return tr;
  }

  function updateFooter() {
    const shown = list.rows.length;
    const total = Math.max(list.total, shown);
    el.totalCount.dataset.shown = String(shown);
    el.totalCount.dataset.total = String(total);
    el.totalCount.textContent = total === 0 ? '' : fmtNum(shown) + ' of ' + fmtNum(total) + (total === 1 ? ' lead' : ' leads');
    el.loadMore.hidden = shown >= total;
    el.empty.hidden = shown > 0 || list.loading;
    el.empty.textContent = filtersActive()
      ? 'No leads match these filters.'
      : 'No leads yet. They appear here the moment Meta sends them.';
  }

  function setRows(leads) {
    list.rows = [];
    list.shown.clear();
    const frag = document.createDocumentFragment();
    for (const lead of leads) {
      const id = Number(lead.id);
      remember(lead);
      if (list.shown.has(id)) continue;
      list.shown.add(id);
      list.rows.push(lead);
      frag.appendChild(renderRow(lead, false));
    }
    el.leads.replaceChildren(frag);
  }

  function appendRows(leads) {
    const frag = document.createDocumentFragment();
    for (const lead of leads) {
      const id = Number(lead.id);
      remember(lead);
      if (list.shown.has(id)) continue;
      list.shown.add(id);
      list.rows.push(lead);
      frag.appendChild(renderRow(lead, false));
    }
    el.leads.appendChild(frag);
  }

  function showListError(msg) {
    el.listError.textContent = msg || '';
    el.listError.hidden = !msg;
  }

  // Reloads the list from offset 0. keepSize keeps as many rows as are loaded now (for refreshes).
  async function reloadList(opts) {
    const keepSize = opts && opts.keepSize;
    const limit = keepSize ? Math.min(MAX_LIMIT, Math.max(PAGE_SIZE, list.rows.length)) : PAGE_SIZE;
    const seq = ++list.seq;
    list.loading = true;
    el.leads.setAttribute('aria-busy', 'true');
    try {
      const data = await api('/api/leads?' + filterParams(Object.assign(sortParams(), { limit: limit, offset: 0 })));
      if (seq !== list.seq) return;
      list.total = Number(data.total) || 0;
      setRows(Array.isArray(data.leads) ? data.leads : []);
      showListError('');
    } catch (e) {
      if (seq !== list.seq || (e && e.status === 401)) return;
      showListError('Could not load leads: ' + e.message);
    } finally {
      if (seq === list.seq) {
        list.loading = false;
        el.leads.removeAttribute('aria-busy');
        updateFooter();
      }
    }
  }

  async function loadMore() {
    const seq = list.seq;
    el.loadMore.disabled = true;
    try {
      const data = await api('/api/leads?' + filterParams(Object.assign(sortParams(), {
        limit: PAGE_SIZE, offset: list.rows.length,
      })));
      if (seq !== list.seq) return;
      list.total = Number(data.total) || list.total;
      appendRows(Array.isArray(data.leads) ? data.leads : []);
    } catch (e) {
      if (e && e.status !== 401) toast('Could not load more leads: ' + e.message, 'error');
    } finally {
      el.loadMore.disabled = false;
      updateFooter();
    }
  }

  const refetchSoon = soon(() => reloadList({ keepSize: true }), 400);
  const statsSoon = soon(() => loadStats(), 1000);
  const formsSoon = soon(() => { loadForms(); loadPages(); }, 1500);

  // One lead arriving from the stream or the fallback check.
  function arrive(lead) {
    if (!lead || lead.id === undefined || lead.id === null) return;
    const id = Number(lead.id);
    if (!Number.isFinite(id)) return;
    const isNew = id > maxId;
    remember(lead);
    if (isNew) maxId = id;
    if (!isNew) return; // already seen (a replay overlap or a fallback fetch that raced the stream)
    toastLead(lead);
    statsSoon();
    if (lead.form_id && !forms.has(String(lead.form_id))) formsSoon();
    if (list.shown.has(id)) return;
    if (isDefaultView()) {
      // Newest first and no filters: the new lead belongs at the top.
      list.shown.add(id);
      list.rows.unshift(lead);
      list.total += 1;
      el.leads.prepend(renderRow(lead, true));
      updateFooter();
    } else {
      // Filters or another order: let the server decide whether and where it belongs, so a lead
      // that does not match never shows.
      refetchSoon();
    }
  }

  // ---- live stream and fallbacks -------------------------------------------------------------

  const CONN_TEXT = { live: 'Live', checking: 'Checking…', offline: 'Offline' };
  const CONN_TITLE = {
    live: 'New leads appear the moment they are saved.',
    checking: 'The live stream dropped; checking for new leads every 3 seconds.',
    offline: 'The server cannot be reached; retrying every 3 seconds.',
  };

  function setConn(state) {
    connState = state;
    el.conn.dataset.state = state;
    el.conn.textContent = CONN_TEXT[state];
    el.conn.title = CONN_TITLE[state];
  }

  function openStream() {
    if (es || reloading) return;
    if (!primed) {
      // Without a known newest id, a replay would announce every old lead as new.
      startPolling();
      return;
    }
    const src = new EventSource('/api/stream?last_event_id=' + encodeURIComponent(String(maxId)));
    es = src;
    src.onopen = () => {
      if (es !== src) return;
      setConn('live');
      stopPolling();
    };
    src.addEventListener('lead', (ev) => {
      if (es !== src) return;
      let lead;
      try {
        lead = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      arrive(lead);
    });
    src.addEventListener('refresh', () => {
      if (es !== src) return;
      refreshAll();
    });
    src.onerror = () => {
      if (es !== src) return;
      // Don't leave it to EventSource's own retry: it gives up for good on a non-200 and can't
      // tell us why. Close it, fall back to the 3 s count check, which also reopens the stream.
      src.close();
      es = null;
      if (connState === 'live') setConn('checking');
      startPolling();
    };
  }

  function stopStream() {
    if (es) {
      es.close();
      es = null;
    }
  }

  function startPolling() {
    if (pollTimer || reloading) return;
    pollTimer = setInterval(pollTick, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }

  async function pollTick() {
    if (polling) return;
    polling = true;
    try {
      const ok = await checkForNew();
      if (!ok) {
        setConn('offline');
        return;
      }
      if (connState !== 'live') setConn('checking');
      if (!es) openStream();
    } finally {
      polling = false;
    }
  }

  // Asks /api/leads/count whether anything is new and fetches it. Returns false when the server
  // could not be reached.
  async function checkForNew() {
    let c;
    try {
      c = await api('/api/leads/count');
    } catch (e) {
      return false;
    }
    const lastId = Number(c.last_id) || 0;
    const count = Number(c.count) || 0;
    const countDropped = lastCount !== null && count < lastCount;
    lastCount = count;
    if (!primed) {
      // First answer: everything up to here existed before this page; nothing to announce.
      primed = true;
      if (lastId > maxId) maxId = lastId;
      return true;
    }
    if (lastId > maxId) {
      const want = lastId - maxId;
      if (want > MAX_LIMIT) {
        // Too many to toast one by one; take the newest id and reload what is on screen.
        toast(fmtNum(want) + ' new leads arrived.', 'lead');
        maxId = lastId;
        reloadList({ keepSize: true });
        loadStats();
        return true;
      }
      try {
        const data = await api('/api/leads?' + new URLSearchParams({
          sort: 'received_at', order: 'desc', limit: String(Math.min(MAX_LIMIT, want + 10)),
        }));
        const fresh = (Array.isArray(data.leads) ? data.leads : [])
          .filter((l) => Number(l.id) > maxId)
          .sort((a, b) => Number(a.id) - Number(b.id));
        for (const lead of fresh) arrive(lead);
      } catch (e) {
        return e && e.status ? true : false;
      }
    } else if (countDropped) {
      reloadList({ keepSize: true });
      loadStats();
    }
    return true;
  }

  async function refreshAll() {
    await checkForNew();
    reloadList({ keepSize: true });
    loadStats();
    loadStatus();
    loadForms();
    loadPages();
  }

  // ---- stats ---------------------------------------------------------------------------------

  let statsSeq = 0;
  async function loadStats() {
    const seq = ++statsSeq;
    let s;
    try {
      const p = filterParams().toString();
      s = await api('/api/stats' + (p ? '?' + p : ''));
    } catch (e) {
      return;
    }
    if (seq !== statsSeq) return;
    el.today.textContent = fmtNum(s.today);
    el.week.textContent = fmtNum(s.last_7_days);
    el.total.textContent = fmtNum(s.total);
    renderPerForm(Array.isArray(s.per_form) ? s.per_form : []);
    renderChart(Array.isArray(s.per_day) ? s.per_day : []);
  }

  function renderPerForm(items) {
    const frag = document.createDocumentFragment();
    const max = items.reduce((m, f) => Math.max(m, Number(f.count) || 0), 0) || 1;
    const sorted = items.slice().sort((a, b) => (Number(b.count) || 0) - (Number(a.count) || 0));
    for (const f of sorted) {
      const li = make('li');
      const btn = make('button', 'per-form-item');
      btn.type = 'button';
      btn.dataset.formId = str(f.form_id);
      const active = view.form_id && view.form_id === str(f.form_id);
      btn.setAttribute('aria-pressed', active ? 'true' : 'false');
      const label = f.form_name ? String(f.form_name) : (f.form_id ? String(f.form_id) : 'unknown form');
      btn.title = active ? 'Show all forms' : 'Show only ' + label;
      const top = make('span', 'per-form-top');
      top.appendChild(make('span', 'per-form-name', label));
      top.appendChild(make('span', 'per-form-count', fmtNum(f.count)));
      btn.appendChild(top);
      const bar = svg('svg', { class: 'per-form-bar', viewBox: '0 0 100 4', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
      bar.appendChild(svg('rect', { class: 'track', x: 0, y: 0, width: 100, height: 4, rx: 2 }));
      const w = Math.max(1, Math.round(((Number(f.count) || 0) / max) * 100));
      bar.appendChild(svg('rect', { class: 'fill', x: 0, y: 0, width: w, height: 4, rx: 2 }));
      btn.appendChild(bar);
      li.appendChild(btn);
      frag.appendChild(li);
    }
    if (!sorted.length) frag.appendChild(make('li', 'muted small', 'No leads yet.'));
    el.perForm.replaceChildren(frag);
  }

  let chartDays = [];
  let chartWidth = 0;
  function renderChart(days) {
    chartDays = days;
    // Draw at the size it is shown, so labels stay readable from a phone to a wide screen.
    const measured = Math.round(el.chart.getBoundingClientRect().width);
    const W = measured >= 200 ? measured : 600;
    chartWidth = W;
    const H = W < 480 ? 150 : 180, left = 34, right = 6, top = 10, bottom = 24;
    el.chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    const plotW = W - left - right, plotH = H - top - bottom;
    const n = days.length;
    const counts = days.map((d) => Math.max(0, Number(d.count) || 0));
    const maxCount = counts.reduce((m, c) => Math.max(m, c), 0);
    // Round steps (1, 2, 5, 10, 20, 50 …) with at most four of them up to the top of the scale.
    let step = 1;
    for (let mag = 1; ; mag *= 10) {
      const s = [1, 2, 5].map((m) => m * mag).find((c) => Math.ceil(maxCount / c) <= 4);
      if (s) {
        step = s;
        break;
      }
    }
    const scaleMax = Math.max(1, Math.ceil(maxCount / step)) * step;
    const nodes = [];

    const gridVals = [];
    for (let v = 0; v <= scaleMax; v += step) gridVals.push(v);
    for (const v of gridVals) {
      const y = top + plotH - (v / scaleMax) * plotH;
      nodes.push(svg('line', { class: v === 0 ? 'axis' : 'grid', x1: left, x2: W - right, y1: y, y2: y }));
      const t = svg('text', { class: 'tick', x: left - 6, y: y + 4, 'text-anchor': 'end' });
      t.textContent = fmtNum(v);
      nodes.push(t);
    }

    if (n > 0) {
      const slot = plotW / n;
      const barW = Math.max(1, slot * 0.7);
      let busiest = null;
      days.forEach((d, i) => {
        const c = counts[i];
        if (!busiest || c > busiest.count) busiest = { day: d.day, count: c };
        const h = c > 0 ? Math.max(2, (c / scaleMax) * plotH) : 1;
        const x = left + i * slot + (slot - barW) / 2;
        const y = top + plotH - h;
        const g = svg('g', { class: 'bar' + (i === n - 1 ? ' today' : '') + (c === 0 ? ' zero' : '') });
        const title = svg('title', {});
        title.textContent = dayLabel(d.day) + ': ' + fmtNum(c) + (c === 1 ? ' lead' : ' leads');
        g.appendChild(title);
        g.appendChild(svg('rect', { x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: h.toFixed(1), rx: 1.5 }));
        // A taller invisible hit area so the tooltip works on small bars.
        g.appendChild(svg('rect', { class: 'hit', x: (left + i * slot).toFixed(1), y: top, width: slot.toFixed(1), height: plotH }));
        g.dataset.day = str(d.day);
        g.dataset.count = String(c);
        nodes.push(g);
      });
      const labelIdx = n > 2 ? [0, Math.floor((n - 1) / 2), n - 1] : [...Array(n).keys()];
      for (const i of labelIdx) {
        const anchor = i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
        const x = i === 0 ? left : i === n - 1 ? W - right : left + i * slot + slot / 2;
        const t = svg('text', { class: 'tick', x: x.toFixed(1), y: H - 6, 'text-anchor': anchor });
        t.textContent = dayLabel(days[i].day);
        nodes.push(t);
      }
      const total = counts.reduce((a, b) => a + b, 0);
      el.chart.setAttribute('aria-label', maxCount === 0
        ? 'Leads per day: none in the last ' + n + ' days'
        : 'Leads per day over the last ' + n + ' days: ' + fmtNum(total) + ' in all, busiest ' +
          dayLabel(busiest.day) + ' with ' + fmtNum(busiest.count));
      if (maxCount === 0) {
        const t = svg('text', { class: 'chart-empty', x: left + plotW / 2, y: top + plotH / 2, 'text-anchor': 'middle' });
        t.textContent = 'No leads in these days';
        nodes.push(t);
      }
    }
    el.chart.replaceChildren(...nodes);
  }

  // ---- forms and pages for the filters -------------------------------------------------------

  async function loadForms() {
    let data;
    try {
      data = await api('/api/forms');
    } catch (e) {
      return;
    }
    const items = Array.isArray(data.forms) ? data.forms : [];
    forms = new Map(items.map((f) => [str(f.form_id), f]));
    const opts = [allOption('All forms')];
    const sorted = items.slice().sort((a, b) =>
      (a.form_name || a.form_id || '').toString().localeCompare((b.form_name || b.form_id || '').toString()));
    for (const f of sorted) {
      const o = make('option', null, (f.form_name ? f.form_name : f.form_id) + ' (' + fmtNum(f.count) + ')');
      o.value = str(f.form_id);
      if (f.form_name) o.title = 'Form ' + str(f.form_id);
      opts.push(o);
    }
    el.formSel.replaceChildren(...opts);
    ensureOption(el.formSel, view.form_id);
    el.formSel.value = view.form_id;
    // Rows rendered before the names were known show ids; fill the names in.
    for (const tr of el.leads.children) {
      const lead = known.get(Number(tr.dataset.leadId));
      const td = tr.querySelector('.col-form');
      if (lead && td && !lead.form_name && lead.form_id) {
        const label = formLabel(lead);
        if (td.textContent !== label) {
          td.textContent = label;
          td.title = label;
        }
      }
    }
  }

  async function loadPages() {
    let data;
    try {
      data = await api('/api/pages');
    } catch (e) {
      return;
    }
    pages = Array.isArray(data.pages) ? data.pages : [];
    const opts = [allOption('All pages')];
    for (const p of pages) {
      const o = make('option', null, str(p.page_id) + ' (' + fmtNum(p.count) + ')');
      o.value = str(p.page_id);
      opts.push(o);
    }
    el.pageSel.replaceChildren(...opts);
    ensureOption(el.pageSel, view.page_id);
    el.pageSel.value = view.page_id;
  }

  function allOption(text) {
    const o = make('option', null, text);
    o.value = '';
    return o;
  }

  // ---- status, problems, dead letters --------------------------------------------------------

  async function loadStatus() {
    let s;
    try {
      s = await api('/api/status');
    } catch (e) {
      return;
    }
    const problems = Array.isArray(s.problems) ? s.problems : [];
    el.problemList.replaceChildren(...problems.map((p) => make('li', null, str(p))));
    el.problems.hidden = problems.length === 0;
    el.demo.hidden = !s.demo;

    if (s.last_webhook_at) {
      el.lastWebhook.textContent = fmtTime(s.last_webhook_at) + ' (' + ago(s.last_webhook_at) + ')';
      el.lastWebhook.title = fmtFullTime(s.last_webhook_at);
    } else {
      el.lastWebhook.textContent = 'none yet';
      el.lastWebhook.removeAttribute('title');
    }

    const ls = s.last_sync;
    el.lastSync.classList.remove('bad');
    if (!ls) {
      el.lastSync.textContent = 'not yet';
    } else if (ls.ok) {
      el.lastSync.textContent = fmtTime(ls.at) + ': ' + syncSummary(ls);
    } else {
      el.lastSync.textContent = fmtTime(ls.at) + ': failed' + (ls.error ? ': ' + str(ls.error) : '');
      el.lastSync.classList.add('bad');
    }

    el.jobs.textContent = fmtNum(s.jobs_waiting);
    const dead = Number(s.dead_letters) || 0;
    el.dead.textContent = String(dead);
    el.retry.disabled = dead === 0;
    el.deadBox.classList.toggle('bad', dead > 0);
  }

  function plural(n, one, many) {
    return fmtNum(n) + ' ' + (Number(n) === 1 ? one : many);
  }

  function syncSummary(r) {
    return plural(r.forms, 'form', 'forms') + ', ' + fmtNum(r.fetched) + ' fetched, ' + fmtNum(r.new) + ' new';
  }

  async function sync() {
    el.sync.disabled = true;
    const label = el.sync.textContent;
    el.sync.textContent = 'Syncing…';
    try {
      const r = await api('/api/leads/sync', { method: 'POST' });
      toast('Synced ' + plural(r.forms, 'form', 'forms') + ': ' + fmtNum(r.fetched) + ' fetched, ' +
        fmtNum(r.new) + ' new', 'ok');
      // New leads come in over the stream; if it is down, the check picks them up.
      if (!es) checkForNew();
    } catch (e) {
      if (e && e.status !== 401) toast('Sync failed: ' + e.message, 'error');
    } finally {
      el.sync.disabled = false;
      el.sync.textContent = label;
      loadStatus();
    }
  }

  async function retryDead() {
    el.retry.disabled = true;
    try {
      const r = await api('/api/dead-letters/retry', { method: 'POST' });
      toast('Retrying ' + plural(r.retried, 'dead letter', 'dead letters') + '.', 'ok');
    } catch (e) {
      if (e && e.status !== 401) toast('Retry failed: ' + e.message, 'error');
    } finally {
      loadStatus();
    }
  }

  // ---- toasts --------------------------------------------------------------------------------

  function toast(text, kind, leadId) {
    const t = make('div', 'toast' + (kind ? ' toast-' + kind : ''));
    t.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    const msg = make(leadId !== undefined ? 'button' : 'span', 'toast-text', text);
    if (leadId !== undefined) {
      msg.type = 'button';
      msg.dataset.leadId = String(leadId);
      msg.title = 'Show this lead';
      t.dataset.leadId = String(leadId);
    }
    t.appendChild(msg);
    // The × is drawn by CSS so the toast's text is exactly the message.
    const close = make('button', 'toast-close');
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss');
    t.appendChild(close);
    el.toasts.appendChild(t);
    while (el.toasts.children.length > MAX_TOASTS) el.toasts.firstElementChild.remove();
    const timer = setTimeout(() => t.remove(), kind === 'error' ? TOAST_MS * 2 : TOAST_MS);
    close.addEventListener('click', () => {
      clearTimeout(timer);
      t.remove();
    });
    return t;
  }

  function toastLead(lead) {
    const who = leadName(lead) || leadEmail(lead) || leadPhone(lead) || 'someone';
    toast('New lead: ' + who + ' — ' + (formLabel(lead) || 'unknown form'), 'lead', Number(lead.id));
  }

  // ---- detail --------------------------------------------------------------------------------

  function kv(dl, key, value, opts) {
    const wrap = make('div', 'kv-row');
    const dt = make('dt', null, key);
    if (opts && opts.keyTitle) dt.title = opts.keyTitle;
    wrap.appendChild(dt);
    const values = Array.isArray(value) ? value : [value];
    const shown = values.filter((v) => v !== undefined && v !== null && String(v) !== '');
    if (!shown.length) {
      wrap.appendChild(make('dd', 'none', '—'));
    }
    for (const v of shown) {
      const dd = make('dd');
      const s = String(v);
      let link = null;
      if (opts && opts.kind === 'email' && /^[^\s@]+@[^\s@]+$/.test(s)) link = 'mailto:' + s;
      if (opts && opts.kind === 'phone' && /^\+?[\d\s().-]{4,}$/.test(s)) link = 'tel:' + s.replace(/[^\d+]/g, '');
      if (link) {
        // The scheme is fixed by us, so the href can't become script.
        const a = make('a', null, s);
        a.setAttribute('href', link);
        dd.appendChild(a);
      } else {
        dd.textContent = s;
      }
      if (opts && opts.sub) dd.appendChild(make('span', 'sub', opts.sub));
      wrap.appendChild(dd);
    }
    dl.appendChild(wrap);
  }

  function openDetail(id) {
    const lead = known.get(Number(id));
    if (!lead) return;
    el.detail.dataset.leadId = String(lead.id);
    el.detailTitle.textContent = leadName(lead) || leadEmail(lead) || 'Lead ' + str(lead.id);

    el.detailAnswers.replaceChildren();
    const answers = Array.isArray(lead.field_data) ? lead.field_data : [];
    for (const f of answers) {
      if (!f) continue;
      const key = str(f.name);
      const kind = /e-?mail/i.test(key) ? 'email' : /phone/i.test(key) ? 'phone' : null;
      kv(el.detailAnswers, humanize(key), Array.isArray(f.values) ? f.values : [f.values], { keyTitle: key, kind: kind });
    }
    if (!answers.length) el.detailAnswers.appendChild(make('div', 'muted', 'This lead has no answers.'));

    el.detailMeta.replaceChildren();
    const form = formLabel(lead);
    kv(el.detailMeta, 'Form', form, { sub: form && lead.form_id && form !== str(lead.form_id) ? 'id ' + str(lead.form_id) : null });
    kv(el.detailMeta, 'Created', fmtFullTime(lead.created_time), { sub: str(lead.created_time) });
    kv(el.detailMeta, 'Received', fmtFullTime(lead.received_at), { sub: str(lead.received_at) });
    kv(el.detailMeta, 'Came in by', str(lead.source));
    kv(el.detailMeta, 'Lead id (Meta)', str(lead.leadgen_id));
    kv(el.detailMeta, 'Page id', str(lead.page_id));
    kv(el.detailMeta, 'Ad id', str(lead.ad_id));
    kv(el.detailMeta, 'Ad set id', str(lead.adgroup_id));
    kv(el.detailMeta, 'Campaign id', str(lead.campaign_id));
    kv(el.detailMeta, 'Row id', str(lead.id));

    if (typeof el.detail.showModal === 'function') {
      if (!el.detail.open) el.detail.showModal();
    } else {
      el.detail.setAttribute('open', '');
    }
    el.detailClose.focus();
  }

  function closeDetail() {
    if (typeof el.detail.close === 'function' && el.detail.open) el.detail.close();
    else el.detail.removeAttribute('open');
  }

  // ---- wiring --------------------------------------------------------------------------------

  function bind() {
    const searchChanged = debounce(() => {
      const q = el.search.value.trim();
      if (q === view.q) return;
      view.q = q;
      viewChanged();
    }, SEARCH_DEBOUNCE_MS);
    el.search.addEventListener('input', searchChanged);
    el.filters.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = el.search.value.trim();
      if (q !== view.q) {
        view.q = q;
        viewChanged();
      }
    });
    el.formSel.addEventListener('change', () => {
      view.form_id = el.formSel.value;
      viewChanged();
    });
    el.pageSel.addEventListener('change', () => {
      view.page_id = el.pageSel.value;
      viewChanged();
    });
    const dateChanged = (input, key) => () => {
      const v = DATE_RE.test(input.value) ? input.value : '';
      if (v === view[key]) return;
      view[key] = v;
      viewChanged();
    };
    el.since.addEventListener('change', dateChanged(el.since, 'since'));
    el.until.addEventListener('change', dateChanged(el.until, 'until'));
    el.clear.addEventListener('click', () => {
      for (const k of FILTER_KEYS) view[k] = '';
      viewChanged();
      el.search.focus();
    });

    document.querySelector('.leads-table thead').addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-sort]');
      if (!btn) return;
      const key = btn.dataset.sort;
      if (!SORT_KEYS.includes(key)) return;
      if (view.sort === key) {
        view.order = view.order === 'asc' ? 'desc' : 'asc';
      } else {
        view.sort = key;
        view.order = defaultOrder(key);
      }
      viewChanged();
    });

    el.leads.addEventListener('click', (ev) => {
      if (ev.target.closest('a')) return;
      const tr = ev.target.closest('tr[data-lead-id]');
      if (tr) openDetail(tr.dataset.leadId);
    });
    el.leads.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter' && ev.key !== ' ') return;
      const tr = ev.target.closest('tr[data-lead-id]');
      if (!tr || ev.target !== tr) return;
      ev.preventDefault();
      openDetail(tr.dataset.leadId);
    });
    el.loadMore.addEventListener('click', loadMore);

    el.detailClose.addEventListener('click', closeDetail);
    el.detail.addEventListener('click', (ev) => {
      // A click on the backdrop lands on the dialog element itself.
      if (ev.target === el.detail) closeDetail();
    });

    el.toasts.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button.toast-text[data-lead-id]');
      if (btn) openDetail(btn.dataset.leadId);
    });

    el.perForm.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-form-id]');
      if (!btn) return;
      const id = btn.dataset.formId;
      view.form_id = view.form_id === id ? '' : id;
      viewChanged();
    });

    el.sync.addEventListener('click', sync);
    el.retry.addEventListener('click', retryDead);

    document.addEventListener('keydown', (ev) => {
      if (ev.key !== '/' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const t = ev.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      if (el.detail.open) return;
      ev.preventDefault();
      el.search.focus();
    });

    window.addEventListener('pagehide', stopStream);

    if (typeof ResizeObserver === 'function') {
      const redraw = debounce(() => {
        const w = Math.round(el.chart.getBoundingClientRect().width);
        if (chartDays.length && w >= 200 && Math.abs(w - chartWidth) > 4) renderChart(chartDays);
      }, 150);
      new ResizeObserver(redraw).observe(el.chart.parentElement);
    }
  }

  async function start() {
    if (started) return;
    started = true;
    readUrl();
    writeUrl(); // drops unknown parameters (e.g. a sign-in token) from the address bar
    syncControls();
    bind();
    setConn('checking');
    loadForms();
    loadPages();
    loadStatus();
    loadStats();
    // Know the newest id before opening the stream, so its replay brings only what is new and
    // nothing already on screen is toasted as an arrival.
    await Promise.all([reloadList({ keepSize: false }), checkForNew()]);
    openStream();
    setInterval(refreshAll, FULL_REFRESH_MS);
    setInterval(loadStatus, STATUS_MS);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
