// The dashboard's live-data source (web/live-source.js) on its own: a fake EventSource, a fake
// fetch behind the real api.js, and a fake clock. No browser, no npm packages:
//   node --test tests/web/
// (the browser tests in tests/e2e cover the same paths end to end, but not the 60 s refresh,
// and only with real time).

import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { FULL_REFRESH_MS, LiveSource, MAX_CATCH_UP, POLL_MS } from '../../web/live-source.js';

// ---- fakes ------------------------------------------------------------------------------------

// Behaves as a browser's: events only while not closed; the test plays the server's part.
class FakeEventSource {
  static opened = [];

  constructor(url) {
    this.url = url;
    this.closed = false;
    this.listeners = new Map();
    this.onopen = null;
    this.onerror = null;
    FakeEventSource.opened.push(this);
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  close() {
    this.closed = true;
  }

  // The id it was opened to resume from.
  get lastEventId() {
    return new URL(this.url, 'http://x').searchParams.get('last_event_id');
  }

  // ---- the server's side
  connect() {
    if (!this.closed && this.onopen) this.onopen({ type: 'open' });
  }

  send(type, data) {
    if (this.closed) return;
    const ev = { type, data: typeof data === 'string' ? data : JSON.stringify(data) };
    for (const fn of this.listeners.get(type) || []) fn(ev);
  }

  fail() {
    if (!this.closed && this.onerror) this.onerror({ type: 'error' });
  }
}

// The server's leads behind a fake fetch: /api/leads/count and /api/leads, as the real server
// answers them. `down` makes every request fail the way a refused connection does; `broken`
// does that ('unreachable') or answers an HTTP error (a status) for one path.
class FakeServer {
  constructor(lastId = 0) {
    this.leads = [];
    for (let id = 1; id <= lastId; id++) this.save(id);
    this.down = false;
    this.broken = new Map();
    this.requests = [];
    this.fetch = async (path) => {
      this.requests.push(path);
      const url = new URL(path, 'http://leadstream.test');
      const broken = this.broken.get(url.pathname);
      if (this.down || broken === 'unreachable') throw new TypeError('Failed to fetch');
      if (broken) return { ok: false, status: broken, json: async () => ({ error: 'broken' }) };
      let body;
      if (url.pathname === '/api/leads/count') {
        body = { count: this.leads.length, last_id: this.leads.reduce((m, l) => Math.max(m, l.id), 0) };
      } else if (url.pathname === '/api/leads') {
        const limit = Number(url.searchParams.get('limit'));
        const newest = [...this.leads].sort((a, b) => b.id - a.id).slice(0, limit);
        body = { total: this.leads.length, leads: newest };
      } else {
        return { ok: false, status: 404, json: async () => ({ error: 'not found' }) };
      }
      return { ok: true, status: 200, json: async () => structuredClone(body) };
    };
  }

  save(id) {
    const lead = { id, fields: { full_name: `Lead ${id}` } };
    this.leads.push(lead);
    return lead;
  }

  // How many requests to `pathname` since the last forget().
  took(pathname) {
    return this.requests.filter((p) => new URL(p, 'http://x').pathname === pathname).length;
  }

  forget() {
    this.requests = [];
  }
}

// setInterval and clearInterval on a clock that moves only when told to.
class FakeClock {
  now = 0;
  #timers = new Map();
  #next = 1;

  setInterval(fn, ms) {
    const id = this.#next++;
    this.#timers.set(id, { fn, ms, at: this.now + ms });
    return id;
  }

  clearInterval(id) {
    this.#timers.delete(id);
  }

  get pending() {
    return [...this.#timers.values()].map((t) => t.ms).sort((a, b) => a - b);
  }

  // Moves time forward by `ms`, firing every timer due on the way and letting the work each
  // one starts finish before the next.
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [, t] = due;
      this.now = t.at;
      t.at += t.ms;
      t.fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

// Lets every promise chain that is waiting on a fake answer run to its end.
async function settle() {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

// ---- the set-up each test starts from ---------------------------------------------------------

let server;
let clock;
let source;
let got; // everything the source told its listeners, in order
const realFetch = globalThis.fetch;

beforeEach(() => {
  FakeEventSource.opened = [];
  server = new FakeServer(5); // five leads saved before the page opened
  globalThis.fetch = server.fetch; // the real api.js calls it
  clock = new FakeClock();
  source = new LiveSource({ EventSource: FakeEventSource, timers: clock });
  got = { leads: [], refreshes: [], states: [], logouts: 0, erased: [] };
  source.on('erased', (id) => got.erased.push(id));
  source.on('logout', () => got.logouts++);
  source.on('lead', (lead) => got.leads.push(lead.id));
  source.on('refresh', (r) => got.refreshes.push(r));
  source.on('state', (s) => got.states.push(s));
});

afterEach(() => {
  source.stop();
  globalThis.fetch = realFetch;
});

const streams = () => FakeEventSource.opened;
const stream = () => streams().at(-1);

// Started, with the stream open and live, and the requests so far forgotten.
async function live() {
  await source.start(Promise.resolve());
  await settle();
  stream().connect();
  server.forget();
  return stream();
}

// ---- the tests --------------------------------------------------------------------------------

describe('starting', () => {
  test('leads saved before the page opened are not announced; the stream resumes after the newest', async () => {
    let listLoaded;
    const ready = new Promise((r) => (listLoaded = r));
    const started = source.start(ready);
    await settle();
    assert.equal(server.took('/api/leads/count'), 1);
    assert.equal(streams().length, 0, 'no stream before the first list answer is in');
    listLoaded();
    await started;
    assert.equal(streams().length, 1);
    assert.equal(stream().lastEventId, '5');
    assert.equal(source.state, 'checking');
    stream().connect();
    assert.deepEqual(got.states, ['live']);
    assert.deepEqual(got.leads, []);
  });

  test('without a first count answer no stream opens (its replay would announce every old lead)', async () => {
    server.down = true;
    await source.start(Promise.resolve());
    assert.equal(streams().length, 0);
    await clock.advance(POLL_MS);
    assert.deepEqual(got.states, ['offline']);
    assert.equal(streams().length, 0);

    server.down = false;
    server.save(6); // saved while the page could not ask: it predates what the page knows
    await clock.advance(POLL_MS);
    assert.equal(streams().length, 1);
    assert.equal(stream().lastEventId, '6');
    stream().connect();
    assert.deepEqual(got.states, ['offline', 'checking', 'live']);
    assert.deepEqual(got.leads, []);
  });
});

describe('while the stream is live', () => {
  test('a lead that arrives is passed on once, also when the stream sends it again', async () => {
    const es = await live();
    es.send('lead', server.save(6));
    assert.deepEqual(got.leads, [6]);
    es.send('lead', { id: 6, fields: {} });
    es.send('lead', { id: 4, fields: {} });
    es.send('lead', 'not json');
    es.send('lead', { fields: {} });
    assert.deepEqual(got.leads, [6]);
    es.send('lead', server.save(7));
    assert.deepEqual(got.leads, [6, 7]);
  });

  test('"event: erased" passes on the id alone; a garbled one is ignored', async () => {
    const es = await live();
    es.send('lead', server.save(6));
    es.send('erased', { id: 6 });
    es.send('erased', { id: 'six' });
    es.send('erased', 'not json');
    es.send('erased', {});
    assert.deepEqual(got.erased, [6]);
    assert.deepEqual(got.leads, [6]);
  });

  test('no count checks run while the stream is live', async () => {
    await live();
    await clock.advance(FULL_REFRESH_MS - 1);
    assert.equal(server.took('/api/leads/count'), 0);
    assert.deepEqual(clock.pending, [FULL_REFRESH_MS], 'only the 60 s refresh is scheduled');
  });

  test('"event: refresh" catches up on anything missed, then asks for a full reload', async () => {
    const es = await live();
    server.save(6);
    es.send('refresh', '');
    await settle();
    assert.equal(server.took('/api/leads/count'), 1);
    assert.deepEqual(got.leads, [6]);
    assert.deepEqual(got.refreshes, [{ full: true, missed: 0 }]);
  });

  test('"event: logout" stops everything for good and says so once', async () => {
    const es = await live();
    es.send('logout', '{}');
    assert.equal(got.logouts, 1);
    assert.equal(es.closed, true, 'no reconnect into a 401');
    assert.deepEqual(clock.pending, [], 'no checks, no refresh');
    await clock.advance(FULL_REFRESH_MS);
    assert.equal(server.took('/api/leads/count'), 0);
    assert.equal(streams().length, 1);
    es.send('logout', '{}');
    assert.equal(got.logouts, 1);
  });

  test('every 60 s: a count check, then a full reload, also while live', async () => {
    const es = await live();
    await clock.advance(FULL_REFRESH_MS);
    assert.equal(server.took('/api/leads/count'), 1);
    assert.equal(server.took('/api/leads'), 0, 'nothing new, nothing fetched');
    assert.deepEqual(got.refreshes, [{ full: true, missed: 0 }]);

    es.send('lead', server.save(6));
    server.save(7); // the stream has not sent it yet
    await clock.advance(FULL_REFRESH_MS);
    assert.deepEqual(got.refreshes, [{ full: true, missed: 0 }, { full: true, missed: 0 }]);
    assert.deepEqual(got.leads, [6, 7]);
    es.send('lead', server.leads.at(-1)); // now it does
    assert.deepEqual(got.leads, [6, 7], 'not passed on twice');
  });
});

describe('when the stream drops', () => {
  test('checking; the 3 s check catches up in id order and reopens the stream from the last id seen', async () => {
    const es = await live();
    es.send('lead', server.save(6));
    es.fail();
    assert.equal(es.closed, true, 'closed, not left to retry on its own');
    assert.equal(source.state, 'checking');
    assert.deepEqual(got.states, ['live', 'checking']);
    assert.equal(streams().length, 1, 'reopened by the check, not at once');

    server.save(7);
    server.save(8);
    await clock.advance(POLL_MS);
    assert.equal(server.took('/api/leads/count'), 1);
    assert.deepEqual(got.leads, [6, 7, 8]);
    assert.equal(streams().length, 2);
    assert.equal(stream().lastEventId, '8');

    // The reopened stream replays from 8; the server's replay of an older one shows nothing.
    const again = stream();
    again.connect();
    assert.deepEqual(got.states, ['live', 'checking', 'live']);
    again.send('lead', server.leads.find((l) => l.id === 8));
    again.send('lead', server.save(9));
    assert.deepEqual(got.leads, [6, 7, 8, 9]);

    // Back to live: the checks stop.
    server.forget();
    await clock.advance(3 * POLL_MS);
    assert.equal(server.took('/api/leads/count'), 0);
  });

  test('a stream that fails again keeps the checks going, each trying it again', async () => {
    const es = await live();
    es.fail();
    for (let i = 1; i <= 3; i++) {
      await clock.advance(POLL_MS);
      assert.equal(streams().length, 1 + i);
      stream().fail();
    }
    assert.equal(server.took('/api/leads/count'), 3);
    assert.equal(source.state, 'checking');
  });

  test('a server that cannot be reached makes it offline; back, it goes checking, then live', async () => {
    const es = await live();
    server.down = true;
    es.fail();
    await clock.advance(POLL_MS);
    assert.equal(source.state, 'offline');
    assert.equal(streams().length, 1, 'no stream to a server that is not there');

    server.down = false;
    server.save(6);
    await clock.advance(POLL_MS);
    assert.deepEqual(got.leads, [6]);
    assert.equal(source.state, 'checking');
    assert.equal(stream().lastEventId, '6');
    stream().connect();
    assert.deepEqual(got.states, ['live', 'checking', 'offline', 'checking', 'live']);
  });

  test('a catch-up that cannot reach the server is offline; one the server refuses is not', async () => {
    const es = await live();
    es.fail();
    server.save(6);
    server.broken.set('/api/leads', 'unreachable');
    await clock.advance(POLL_MS);
    assert.equal(source.state, 'offline');
    assert.equal(streams().length, 1);

    server.broken.set('/api/leads', 500);
    await clock.advance(POLL_MS);
    assert.equal(source.state, 'checking');
    assert.deepEqual(got.leads, []);
    // The server is there, so the stream is tried again; its replay brings what the fetch did not.
    assert.equal(stream().lastEventId, '5');
    stream().connect();
    stream().send('lead', server.leads.at(-1));
    assert.deepEqual(got.leads, [6]);
  });

  test('more missed leads than one answer holds: one reload that says how many, not a flood', async () => {
    const es = await live();
    es.fail();
    const last = 5 + MAX_CATCH_UP + 500;
    for (let id = 6; id <= last; id++) server.save(id);
    await clock.advance(POLL_MS);
    assert.deepEqual(got.leads, []);
    assert.equal(server.took('/api/leads'), 0);
    assert.deepEqual(got.refreshes, [{ full: false, missed: MAX_CATCH_UP + 500 }]);
    assert.equal(stream().lastEventId, String(last));
  });

  test('fewer leads than before (some deleted): the list is reloaded', async () => {
    const es = await live();
    es.fail();
    await clock.advance(POLL_MS);
    assert.deepEqual(got.refreshes, []);
    server.leads.splice(0, 2);
    await clock.advance(POLL_MS);
    assert.deepEqual(got.refreshes, [{ full: false, missed: 0 }]);
  });
});

describe('on request and at the end', () => {
  test('checkUnlessStreaming looks only when there is no stream', async () => {
    const es = await live();
    source.checkUnlessStreaming();
    await settle();
    assert.equal(server.took('/api/leads/count'), 0);
    es.fail();
    server.save(6);
    source.checkUnlessStreaming();
    await settle();
    assert.equal(server.took('/api/leads/count'), 1);
    assert.deepEqual(got.leads, [6]);
  });

  test('stop: the stream closes, no timer is left, and nothing more is passed on', async () => {
    const es = await live();
    es.fail();
    await clock.advance(POLL_MS);
    const reopened = stream();
    source.stop();
    server.forget();
    assert.equal(reopened.closed, true);
    assert.deepEqual(clock.pending, []);
    reopened.send('lead', server.save(6));
    await clock.advance(FULL_REFRESH_MS);
    assert.deepEqual(got.leads, []);
    assert.equal(server.took('/api/leads/count'), 0);
  });
});
