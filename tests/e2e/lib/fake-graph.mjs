// A small fake of Meta's Graph API, behaving the way docs/meta.md describes the real one:
// ids as strings, `created_time` with a `+0000` offset (no colon), errors as HTTP 400 with
// Meta's error JSON, and `access_token` + `appsecret_proof` checked on every call.
//
// It answers what leadstream asks for:
//   GET /v25.0/{lead_id}?fields=…           → the lead
//   GET /v25.0/{form_id}?fields=id,name,…   → {"id","name","status"}
//   GET /v25.0/{page_id}/leadgen_forms      → the page's forms
//   GET /v25.0/{form_id}/leads?filtering=…  → the form's leads, newest first, after `time_created`

import http from 'node:http';
import crypto from 'node:crypto';

export const GRAPH_VERSION = 'v25.0';

// Graph's own timestamp format: 2026-11-28T14:02:11+0000.
export function graphTime(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, '+0000');
}

export class FakeGraph {
  constructor({ token, appSecret }) {
    this.token = token;
    this.proof = crypto.createHmac('sha256', appSecret).update(token).digest('hex');
    this.leads = new Map(); // lead id → lead JSON
    this.forms = new Map(); // form id → { id, name, pageId }
    this.calls = []; // every path asked for, in order, without the query
    this.refused = []; // calls refused for a wrong token or proof (a leadstream bug if any)
    this.server = null;
    this.port = 0;
  }

  async start() {
    this.server = http.createServer((req, res) => this.answer(req, res));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
    return this;
  }

  async stop() {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
    this.server = null;
  }

  // The value for META_GRAPH_URL.
  get url() {
    return `http://127.0.0.1:${this.port}/${GRAPH_VERSION}`;
  }

  addForm(pageId, formId, name) {
    this.forms.set(formId, { id: formId, name, pageId });
  }

  // `fields` is a list of [question, value or [values]] pairs, in the order the form asks them.
  addLead({ id, formId, created = new Date(), fields }) {
    const lead = {
      id,
      created_time: graphTime(created),
      form_id: formId,
      field_data: fields.map(([name, v]) => ({ name, values: Array.isArray(v) ? v : [v] })),
      is_organic: false,
      platform: 'fb',
    };
    this.leads.set(id, lead);
    return lead;
  }

  answer(req, res) {
    const url = new URL(req.url, 'http://graph.invalid');
    this.calls.push(url.pathname);
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify(body));
    };
    const error = (code, message) =>
      send(400, { error: { message, type: 'OAuthException', code, fbtrace_id: 'E2eTrace01' } });

    if (req.method !== 'GET') return error(100, 'Unsupported request method');
    const q = url.searchParams;
    if (q.get('access_token') !== this.token) {
      this.refused.push(url.pathname);
      return error(190, 'Invalid OAuth access token - Cannot parse access token');
    }
    if (q.get('appsecret_proof') !== this.proof) {
      this.refused.push(url.pathname);
      return error(100, 'Invalid appsecret_proof provided in the API argument');
    }
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== GRAPH_VERSION) return error(100, 'Unknown path components');
    const [, id, edge] = parts;
    const cursors = { cursors: { before: 'QVFIUmJl', after: 'QVFIUmFm' } };

    if (parts.length === 3 && edge === 'leadgen_forms') {
      const data = [...this.forms.values()]
        .filter((f) => f.pageId === id)
        .map((f) => ({ id: f.id, name: f.name, status: 'ACTIVE' }));
      return send(200, { data, paging: cursors });
    }
    if (parts.length === 3 && edge === 'leads') {
      let after = -Infinity;
      try {
        const f = JSON.parse(q.get('filtering') || '[]').find((x) => x.field === 'time_created');
        if (f && f.operator === 'GREATER_THAN') after = Number(f.value);
      } catch (_) {
        return error(100, 'Invalid parameter: filtering');
      }
      const data = [...this.leads.values()]
        .filter((l) => l.form_id === id && Date.parse(l.created_time.replace('+0000', 'Z')) / 1000 > after)
        .reverse();
      return send(200, { data, paging: cursors });
    }
    if (parts.length === 2) {
      if (this.leads.has(id)) return send(200, this.leads.get(id));
      const form = this.forms.get(id);
      if (form) return send(200, { id: form.id, name: form.name, status: 'ACTIVE' });
      return error(100, `Unsupported get request. Object with ID '${id}' does not exist`);
    }
    return error(100, 'Unknown path components');
  }
}
