// One lead in full: every answer Meta sent, and where it came from. A <dialog>.

import { formLabel } from './catalog.js';
import { byId, make } from './dom.js';
import { fmtFullTime, humanize, str } from './format.js';
import { leadEmail, leadName } from './leads.js';
import { linkFor } from './links.js';

const el = {
  detail: byId('lead-detail'),
  title: byId('detail-title'),
  answers: byId('detail-answers'),
  meta: byId('detail-meta'),
  close: byId('detail-close'),
};


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

export function openDetail(lead) {
  if (!lead) return;
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
