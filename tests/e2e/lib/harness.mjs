// The end-to-end harness: the real leadstream binary as a child process (temp SQLite, free
// port, a fake Graph in this process), signed webhooks the way Meta sends them, Debian's
// Chromium through playwright-core, and a watch on every console error the pages log.

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { FakeGraph } from './fake-graph.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = path.resolve(HERE, '..');
export const REPO_DIR = path.resolve(E2E_DIR, '../..');
export const SCREENSHOT_DIR = path.join(E2E_DIR, 'screenshots');
const BINARY = process.env.LEADSTREAM_BIN || path.join(targetDir(), 'debug', binaryName());

// Where cargo puts what it builds: asked of cargo itself, so CARGO_TARGET_DIR and
// .cargo/config.toml are honoured, as `cargo build` honours them.
function targetDir() {
  const cargo = process.env.CARGO || 'cargo';
  const out = execFileSync(cargo, ['metadata', '--format-version', '1', '--no-deps'], {
    cwd: REPO_DIR,
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(out).target_directory;
}

function binaryName() {
  return process.platform === 'win32' ? 'leadstream.exe' : 'leadstream';
}
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const DASHBOARD_TOKEN = 'e2e-dashboard-token-7f3a9c1d';
export const APP_SECRET = 'e2e_app_secret';
export const VERIFY_TOKEN = 'e2e-verify-token';
export const PAGE_TOKEN = 'EAAG-e2e-page-token';
export const PAGE_ID = '104857600000001';

// ---- waiting ---------------------------------------------------------------------------------

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs `check` until it stops throwing, and rethrows its last error after `timeout` ms, so a
// failure says what was wrong rather than just "timed out".
export async function eventually(check, { timeout = 5000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() >= deadline) throw e;
    }
    await sleep(interval);
  }
}

export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

// ---- the server ------------------------------------------------------------------------------

// Children still running when this process ends get SIGKILL, so a crashed or interrupted test
// run never leaves a server behind.
const children = new Set();
function killChildren() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch (_) {
      // already gone
    }
  }
}
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killChildren();
    process.exit(128 + os.constants.signals[sig]);
  });
}

export class Leadstream {
  constructor({ port, dbPath, graphUrl, dir }) {
    this.port = port;
    this.dbPath = dbPath;
    this.graphUrl = graphUrl;
    this.dir = dir;
    this.child = null;
    this.log = '';
    this.starts = 0;
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  env() {
    // Only what the test sets: no META_* or token from the developer's shell, and the working
    // directory is the temp dir, so no .env of the repository is read either.
    const keep = ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR'];
    const env = {};
    for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k];
    return Object.assign(env, {
      LISTEN_ADDR: `127.0.0.1:${this.port}`,
      LEADS_DB: this.dbPath,
      DASHBOARD_TOKEN,
      META_APP_SECRET: APP_SECRET,
      META_WEBHOOK_VERIFY_TOKEN: VERIFY_TOKEN,
      META_PAGE_ACCESS_TOKEN: PAGE_TOKEN,
      META_PAGE_ID: PAGE_ID,
      META_GRAPH_URL: this.graphUrl,
      RUST_LOG: process.env.RUST_LOG || 'warn',
      RUST_BACKTRACE: '1',
    });
  }

  async start({ timeout = 10000 } = {}) {
    if (!fs.existsSync(BINARY)) {
      throw new Error(`${BINARY} is missing: run \`cargo build --bin leadstream\` first (make test-e2e does)`);
    }
    this.starts += 1;
    const child = spawn(BINARY, [], { cwd: this.dir, env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    children.add(child);
    const tag = `[start ${this.starts}] `;
    child.stdout.on('data', (d) => (this.log += tag + d));
    child.stderr.on('data', (d) => (this.log += tag + d));
    child.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      }),
    );
    let early = null;
    child.exited.then((r) => (early = r));
    const deadline = Date.now() + timeout;
    for (;;) {
      if (early) throw new Error(`leadstream exited at start (${JSON.stringify(early)}):\n${this.log}`);
      try {
        const res = await fetch(this.base + '/healthz', { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return this;
      } catch (_) {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`leadstream did not answer /healthz in ${timeout} ms:\n${this.log}`);
      await sleep(25);
    }
  }

  // Sends `signal` and waits for the process to end; returns how it ended and how long it took.
  async stop(signal = 'SIGTERM', { timeout = 8000 } = {}) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return null;
    const t0 = Date.now();
    child.kill(signal);
    let timer;
    const late = new Promise((r) => (timer = setTimeout(() => r('timeout'), timeout)));
    const r = await Promise.race([child.exited, late]);
    clearTimeout(timer);
    if (r === 'timeout') {
      child.kill('SIGKILL');
      await child.exited;
      throw new Error(`leadstream did not exit within ${timeout} ms of ${signal}:\n${this.log}`);
    }
    this.child = null;
    return Object.assign({ ms: Date.now() - t0 }, r);
  }

  // The JSON API with the dashboard token, as a script would use it.
  async api(p, init = {}) {
    const res = await fetch(this.base + p, {
      ...init,
      headers: { authorization: `Bearer ${DASHBOARD_TOKEN}`, ...(init.headers || {}) },
    });
    if (!res.ok) throw new Error(`${p}: HTTP ${res.status}: ${await res.text()}`);
    return res.json();
  }
}

// ---- Meta ------------------------------------------------------------------------------------

export function sign(rawBody) {
  return 'sha256=' + crypto.createHmac('sha256', APP_SECRET).update(rawBody).digest('hex');
}

let leadSeq = 0;
// A 16-digit Meta-style id, unique within this run (kept as a string, like leadstream does).
export function metaId(prefix = '7') {
  leadSeq += 1;
  const stamp = String(Date.now() % 1e9).padStart(9, '0');
  return (prefix + stamp + String(leadSeq).padStart(6, '0')).slice(0, 16);
}

export class Meta {
  constructor(graph, server) {
    this.graph = graph;
    this.server = server;
  }

  // Posts a body signed over its exact bytes; returns the HTTP status.
  async postWebhook(rawBody, { signature = sign(rawBody) } = {}) {
    const res = await fetch(this.server.base + '/webhook', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
      body: rawBody,
    });
    await res.arrayBuffer();
    return res.status;
  }

  // Puts a lead in the fake Graph and delivers its webhook, as Meta does when someone submits a
  // form. `fields` defaults to name, email and phone; `extra` adds more answers.
  async sendLead({ name, email, phone, formId, created = new Date(), extra = [], fields }) {
    const id = metaId();
    const answers = fields || [
      ['full_name', name],
      ...(email ? [['email', email]] : []),
      ...(phone ? [['phone_number', phone]] : []),
      ...extra,
    ];
    this.graph.addLead({ id, formId, created, fields: answers });
    const body = JSON.stringify({
      object: 'page',
      entry: [
        {
          id: PAGE_ID,
          time: Math.floor(Date.now() / 1000),
          changes: [
            {
              field: 'leadgen',
              value: {
                leadgen_id: id,
                page_id: PAGE_ID,
                form_id: formId,
                created_time: Math.floor(created.getTime() / 1000),
              },
            },
          ],
        },
      ],
    });
    const status = await this.postWebhook(body);
    if (status !== 200) throw new Error(`webhook for lead ${id} answered ${status}`);
    return id;
  }
}

// ---- the browser -----------------------------------------------------------------------------

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// playwright's launch() gives every browser a fresh temporary user-data-dir (and deletes it on
// close), so no profile state leaks between runs; contexts add cookie isolation within a run.
export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
}

// Records every console error and uncaught page error. Tests that stop the server on purpose
// declare which failures that may cause (see `expect`); anything else fails the test.
export class ConsoleWatch {
  constructor() {
    this.seen = [];
    this.allowances = new Set();
  }

  attach(context) {
    context.on('page', (page) => this.watchPage(page));
    for (const page of context.pages()) this.watchPage(page);
  }

  watchPage(page) {
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && msg.type() !== 'assert') return;
      this.record({ kind: 'console', text: msg.text(), url: msg.location().url || '' });
    });
    page.on('pageerror', (err) => this.record({ kind: 'pageerror', text: String(err && err.stack || err), url: '' }));
  }

  record(entry) {
    const allowed = [...this.allowances].some((a) => a.matches(entry));
    this.seen.push(Object.assign(entry, { allowed }));
  }

  // Allows console errors that match `matches(entry)` until the returned function is called.
  expect(description, matches) {
    const a = { description, matches, hits: 0 };
    const wrapped = { description, matches: (e) => (matches(e) ? (a.hits++, true) : false) };
    this.allowances.add(wrapped);
    return () => {
      this.allowances.delete(wrapped);
      return a.hits;
    };
  }

  // Throws when an error was logged that no allowance covered; forgets what it saw.
  assertClean() {
    const bad = this.seen.filter((e) => !e.allowed);
    this.seen = [];
    if (bad.length) {
      const lines = bad.map((e) => `  ${e.kind}: ${e.text}${e.url ? ` (${e.url})` : ''}`);
      throw new Error(`the page logged ${bad.length} unexpected error(s):\n${lines.join('\n')}`);
    }
  }
}

// A failed request to one of our own API paths while the server is deliberately down.
export function networkFailureOf(base, paths, codes) {
  const text = new RegExp(`^Failed to load resource: net::(${codes.join('|')})$`);
  return (e) =>
    e.kind === 'console' &&
    text.test(e.text) &&
    paths.some((p) => e.url === base + p || e.url.startsWith(base + p + '?'));
}

// ---- a whole stack ---------------------------------------------------------------------------

// Fake Graph + server + browser + console watch; `close()` tears it all down, also after a
// failed test (call it from `after`).
export async function startStack({ forms = [] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leadstream-e2e-'));
  const graph = await new FakeGraph({ token: PAGE_TOKEN, appSecret: APP_SECRET }).start();
  for (const [id, name] of forms) graph.addForm(PAGE_ID, id, name);
  const server = new Leadstream({
    port: await freePort(),
    dbPath: path.join(dir, 'leads.db'),
    graphUrl: graph.url,
    dir,
  });
  const stack = { dir, graph, server, browser: null, watch: new ConsoleWatch(), meta: new Meta(graph, server) };
  stack.close = async () => {
    await Promise.allSettled([stack.browser && stack.browser.close(), server.stop('SIGKILL')]);
    await graph.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await server.start();
    stack.browser = await launchBrowser();
  } catch (e) {
    await stack.close();
    throw e;
  }
  // A signed-in dashboard in its own context; resolves once the live stream is open.
  stack.openDashboard = async ({ viewport = { width: 1280, height: 800 }, query = '' } = {}) => {
    const context = await stack.browser.newContext({ viewport, locale: 'en-GB', timezoneId: 'UTC' });
    stack.watch.attach(context);
    await recordToasts(context);
    const page = await context.newPage();
    await page.goto(`${server.base}/?token=${encodeURIComponent(DASHBOARD_TOKEN)}`);
    if (query) await page.goto(`${server.base}/?${query}`);
    await waitForConn(page, 'live');
    return { context, page };
  };
  return stack;
}

// ---- reading the dashboard -------------------------------------------------------------------

export async function waitForConn(page, state, timeout = 8000) {
  await page.locator(`#conn-status[data-state="${state}"]`).waitFor({ timeout });
}

// Keeps the text of every toast a page shows in `window.__toastLog`, since toasts go away by
// themselves after a few seconds and a slow test would miss them.
export async function recordToasts(context) {
  await context.addInitScript(() => {
    window.__toastLog = [];
    document.addEventListener('DOMContentLoaded', () => {
      const box = document.getElementById('toasts');
      if (!box) return;
      new MutationObserver((records) => {
        for (const r of records) {
          for (const n of r.addedNodes) {
            const text = n.querySelector && n.querySelector('.toast-text');
            if (text) window.__toastLog.push(text.textContent);
          }
        }
      }).observe(box, { childList: true });
    });
  });
}

// Every toast text shown since the page loaded, oldest first.
export function toastLog(page) {
  return page.evaluate(() => window.__toastLog || []);
}

export function rowNames(page) {
  return page.$$eval('#leads tr.lead-row .col-name', (tds) => tds.map((td) => td.textContent));
}

export function rowFor(page, name) {
  return page.locator('#leads tr.lead-row').filter({ has: page.locator('.col-name', { hasText: name }) });
}

export function screenshotPath(name) {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return path.join(SCREENSHOT_DIR, name);
}
