// The settings view: forwarding's destinations (with their last deliveries and failures), adding
// and deleting one, "Send test", retrying dead deliveries; and the notifications' checkboxes
// (notify.js). Opened from the top bar, in a <dialog>.

import { api } from './api.js';
import { byId, fromTemplate, make } from './dom.js';
import { fmtNum, fmtTime, str } from './format.js';
import { toast } from './toasts.js';
import './notify.js';

const REFRESH_MS = 3000;
const SHOWN_DELIVERIES = 5;

const el = {
  open: byId('settings-button'),
  dialog: byId('settings'),
  close: byId('settings-close'),
  list: byId('destination-list'),
  empty: byId('destinations-empty'),
  form: byId('destination-form'),
  kind: byId('destination-kind'),
  target: byId('destination-target'),
  targetLabel: byId('destination-target-label'),
  forms: byId('destination-forms'),
  secret: byId('destination-secret'),
  secretValue: byId('destination-secret-value'),
};

let timer = null;

el.open.addEventListener('click', () => {
  el.secret.hidden = true;
  if (typeof el.dialog.showModal === 'function') el.dialog.showModal();
  load();
  clearInterval(timer);
  // While it is open, deliveries are followed as they happen.
  timer = setInterval(load, REFRESH_MS);
});
el.close.addEventListener('click', () => el.dialog.close());
el.dialog.addEventListener('close', () => clearInterval(timer));

el.kind.addEventListener('change', () => {
  const email = el.kind.value === 'email';
  el.targetLabel.textContent = email ? 'Addresses (comma-separated)' : 'URL';
  el.target.placeholder = email ? 'sales@example.com' : 'https://crm.example.com/hooks/leads';
});

const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

el.form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { kind: el.kind.value };
  if (body.kind === 'email') body.to = list(el.target.value);
  else body.url = el.target.value.trim();
  const forms = list(el.forms.value);
  if (forms.length) body.forms = forms;
  try {
    const d = await api('/api/destinations', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    el.form.reset();
    el.secret.hidden = !d.secret;
    el.secretValue.textContent = d.secret || '';
    toast('Added: ' + str(d.description), 'ok');
    load();
  } catch (e) {
    toast(e.message, 'error');
  }
});

async function act(path, method, done) {
  try {
    const r = await api(path, { method });
    if (done) toast(done(r), 'ok');
  } catch (e) {
    toast(e.message, 'error');
  }
  load();
}

function deliveryLine(d) {
  const what = d.event === 'test' ? 'test' : d.event + (d.lead_id ? ' #' + d.lead_id : '');
  let state = d.state;
  if (d.state === 'delivered') state = 'delivered ' + fmtTime(d.delivered_at);
  else if (d.last_error) state = d.state + ' after ' + fmtNum(d.attempts) + ' tries: ' + str(d.last_error);
  const li = make('li', 'delivery', what + ': ' + state);
  li.dataset.state = d.state;
  return li;
}

async function item(d) {
  const li = fromTemplate('destination-item');
  li.dataset.id = String(d.id);
  li.querySelector('.destination-name').textContent = str(d.description);
  const forms = d.forms ? ' · forms ' + d.forms.join(', ') : '';
  li.querySelector('.destination-counts').textContent =
    fmtNum(d.delivered) + ' delivered · ' + fmtNum(d.pending) + ' waiting · ' + fmtNum(d.dead) + ' dead' + forms;
  const problem = li.querySelector('.destination-problem');
  problem.textContent = d.problem ? str(d.problem) : '';
  problem.hidden = !d.problem;
  const retry = li.querySelector('.destination-retry');
  retry.hidden = !d.dead;
  retry.addEventListener('click', () =>
    act('/api/destinations/' + d.id + '/retry', 'POST', (r) => fmtNum(r.retried) + ' put back in the queue'));
  li.querySelector('.destination-test').addEventListener('click', () =>
    act('/api/destinations/' + d.id + '/test', 'POST', () => 'Test queued'));
  li.querySelector('.destination-delete').addEventListener('click', () => {
    if (confirm('Delete ' + d.description + '? Deliveries still waiting to it are dropped.')) {
      act('/api/destinations/' + d.id, 'DELETE', () => 'Deleted');
    }
  });
  try {
    const r = await api('/api/destinations/' + d.id + '/deliveries?limit=' + SHOWN_DELIVERIES);
    li.querySelector('.deliveries').replaceChildren(...r.deliveries.map(deliveryLine));
  } catch (_) {
    // The list stays empty; the counts above still say how it goes.
  }
  return li;
}

export async function load() {
  let r;
  try {
    r = await api('/api/destinations');
  } catch (_) {
    return;
  }
  const items = await Promise.all(r.destinations.map(item));
  el.list.replaceChildren(...items);
  el.empty.hidden = items.length > 0;
  el.kind.querySelector('option[value="email"]').disabled = !r.email_available;
}
