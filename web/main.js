// leadstream dashboard: the entry point, and the one module that knows all the others.
//
// Plain ES modules, no build step, served from /assets/ under a strict CSP (script-src 'self',
// style-src 'self'): no inline script or style, no innerHTML. Lead values come from strangers
// filling in a form, so they reach the page only as text (see dom.js).
//
// Who owns what:
//   live-source.js  where leads come from: the stream, the 3 s count check while it is down, the
//                   60 s refresh, the connection state. Emits "lead", "refresh", "state" and
//                   "logout"; knows nothing of the page (tests/web has its unit tests).
//   api.js          fetch and JSON, the server's error sentences, a 401 → the sign-in page
//   view-state.js   search, filters and sort order, kept in the address bar; emits "change"
//   catalog.js      the forms and pages the server knows: filter menus, form names
//   leads.js        reading a lead (name, email, phone), and the leads seen so far, by id
//   lead-list.js    the table of leads (<template id="lead-row">), "Load more", arrivals
//   lead-detail.js  one lead in full, in a <dialog>: status, owner, notes, history, answers
//   team.js         who is signed in, the people, changes to a lead (409 → Conflict)
//   stats.js        today, 7 days, total, per form (<template id="per-form-item">)
//   chart.js        leads per day as SVG bars
//   filters.js      the controls that set the view, and the export links that follow it
//   health.js       pipeline status and problems, "Sync with Meta", retrying dead letters
//   settings.js     forwarding's destinations and their deliveries, in a <dialog>
//   notify.js       opt-in browser notifications (and a sound) for new leads
//   toasts.js       the messages in the corner
//   conn-status.js  the Live / Checking… / Offline indicator
//   dom.js, format.js, events.js   building DOM safely, numbers and times, an emitter
//
// Each view module finds its own elements and handles its own controls when imported. What one
// part does to another is wired here, as listeners and plain calls, so a new view (a settings
// page, browser notifications, a status per row) is a module of its own plus a few lines below.

import { onSessionGone, sessionGone } from './api.js';
import * as catalog from './catalog.js';
import { showConnection } from './conn-status.js';
import { soon } from './events.js';
import * as filters from './filters.js';
import { fmtNum } from './format.js';
import * as health from './health.js';
import { closeDetailOf, leadChanged, onChanged, openDetail, showPeople } from './lead-detail.js';
import * as list from './lead-list.js';
import * as notify from './notify.js';
import './settings.js';
import { knownLead, leadWho } from './leads.js';
import { LiveSource } from './live-source.js';
import * as stats from './stats.js';
import * as team from './team.js';
import * as toasts from './toasts.js';
import * as viewState from './view-state.js';

const STATUS_MS = 20000;

const live = new LiveSource();

const openLead = (id) => openDetail(knownLead(id));
list.onOpenLead(openLead);
toasts.onOpenLead(openLead);

// A form the page has not heard of yet: its name is worth fetching, once for a burst of arrivals.
const loadCatalogSoon = soon(catalog.load, 1500);

live.on('lead', (lead) => {
  const title = 'New lead: ' + leadWho(lead) + ' — ' + (catalog.formLabel(lead) || 'unknown form');
  toasts.toast(title, 'lead', Number(lead.id));
  notify.announce(title, '');
  stats.loadSoon();
  if (lead.form_id && !catalog.knowsForm(lead.form_id)) loadCatalogSoon();
  list.add(lead);
});
// Someone changed a lead (here or elsewhere): its row and an open detail follow at once.
live.on('update', (lead) => {
  list.update(lead);
  leadChanged(lead);
  stats.loadSoon();
});
onChanged((lead) => {
  list.update(lead);
  stats.loadSoon();
});
team.onPeople((names) => {
  showPeople(names);
  filters.showPeople(names);
});

// Erased (by hand, here or elsewhere, or by the retention period): gone from the page too.
live.on('erased', (id) => {
  list.remove(id);
  closeDetailOf(id);
  toasts.dropLead(id);
  stats.loadSoon();
});
live.on('refresh', ({ full, missed }) => {
  if (missed) toasts.toast(fmtNum(missed) + ' new leads arrived.', 'lead');
  list.reload({ keepSize: true });
  stats.load();
  if (full) {
    health.load();
    catalog.load();
  }
});
live.on('state', showConnection);
// The stream says the session has ended (logged out in another tab, or expired).
live.on('logout', sessionGone);

catalog.on('forms', (forms) => {
  filters.showForms(forms);
  list.refreshFormLabels();
});
catalog.on('pages', filters.showPages);

viewState.onChange(() => {
  filters.showView();
  list.reload();
  stats.load();
});

// New leads from a sync come over the stream; when it is down, look for them now.
health.on('synced', () => live.checkUnlessStreaming());

onSessionGone(() => live.stop());
// Signing out here: the stream stops first, so its own `logout` event cannot reload the page
// in the middle of the form's answer (which clears the cookie).
document.querySelector('form.logout')?.addEventListener('submit', () => live.stop());
window.addEventListener('pagehide', () => live.closeStream());

viewState.loadFromUrl();
filters.showView();
showConnection(live.state);
catalog.load();
team.load();
health.load();
stats.load();
live.start(list.reload());
setInterval(health.load, STATUS_MS);
