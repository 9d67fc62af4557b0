// The pipeline's health (/api/status): problems that need a person, demo mode, the last webhook
// and sync, jobs waiting, dead letters; and the two buttons that act on it, "Sync with Meta" and
// "Retry" for dead letters.

import { api } from './api.js';
import { byId, make } from './dom.js';
import { Emitter } from './events.js';
import { ago, fmtFullTime, fmtNum, fmtTime, plural, str } from './format.js';
import { toast } from './toasts.js';

const el = {
  problems: byId('problems'),
  problemList: byId('problem-list'),
  demo: byId('demo-badge'),
  lastWebhook: byId('last-webhook'),
  lastSync: byId('last-sync'),
  jobs: byId('jobs-waiting'),
  dead: byId('dead-letters'),
  deadBox: byId('dead-letters-box'),
  retry: byId('retry-dead'),
  sync: byId('sync-button'),
};

const events = new Emitter();

// "synced": a sync has finished and may have saved leads.
export const on = (type, fn) => events.on(type, fn);

export async function load() {
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
    events.emit('synced', r);
  } catch (e) {
    if (e && e.status !== 401) toast('Sync failed: ' + e.message, 'error');
  } finally {
    el.sync.disabled = false;
    el.sync.textContent = label;
    load();
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
    load();
  }
}

el.sync.addEventListener('click', sync);
el.retry.addEventListener('click', retryDead);
