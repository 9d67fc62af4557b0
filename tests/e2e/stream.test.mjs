// The dashboard's own live stream in Chromium: the path it takes through the server (the one
// the load generator measures), and its end when the session ends.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { DASHBOARD_TOKEN, eventually, startStack, waitForConn } from './lib/harness.mjs';

let s;
before(async () => {
  s = await startStack();
});
after(async () => {
  await s?.close();
});
afterEach(() => s.watch.assertClean());

// A signed-in page in a context of its own, and the head of its EventSource's answer.
async function dashboardWithStreamHead() {
  const context = await s.browser.newContext();
  s.watch.attach(context);
  const page = await context.newPage();
  const streamAnswer = page.waitForResponse((r) => r.request().resourceType() === 'eventsource');
  await page.goto(`${s.server.base}/?token=${encodeURIComponent(DASHBOARD_TOKEN)}`);
  await waitForConn(page, 'live');
  const res = await streamAnswer;
  return { context, page, headers: await res.allHeaders() };
}

describe('the dashboard\u2019s stream', () => {
  test('is written by the socket writer in chunks, on the connection the page\u2019s API calls used', async (t) => {
    const { context, headers } = await dashboardWithStreamHead();
    assert.equal(headers['content-type'], 'text/event-stream');
    assert.equal(headers['transfer-encoding'], 'chunked');
    assert.equal(headers['connection'], 'close');
    const st = await s.server.api('/api/status');
    t.diagnostic(`streams: ${st.stream_clients} open, written ${JSON.stringify(st.streams_written)}`);
    assert.equal(st.stream_clients, 1);
    assert.equal(st.streams_written.open, 1, 'the socket writer serves it');
    // Chromium opens its EventSource on a keep-alive connection its fetches left idle: the
    // case a first-request-only fast path would have missed.
    assert.equal(st.streams_written.on_reused_connections, 1, 'on a reused connection');
    await context.close();
    await eventually(async () => assert.equal((await s.server.api('/api/status')).stream_clients, 0));
  });

  test('ends when its session ends: logging out in another tab sends this one to the sign-in page', async () => {
    const { context, page } = await dashboardWithStreamHead();
    const other = await context.newPage();
    await other.goto(s.server.base + '/');
    await waitForConn(other, 'live');
    await Promise.all([other.waitForURL(s.server.base + '/'), other.click('form.logout button')]);
    await other.locator('#token').waitFor();
    // Long before any 3 s check, 20 s status poll or 60 s refresh could notice.
    await page.locator('#token').waitFor({ timeout: 2500 });
    assert.equal(await page.title(), 'Sign in \u00b7 leadstream');
    await eventually(async () => assert.equal((await s.server.api('/api/status')).stream_clients, 0));
    await context.close();
  });
});
