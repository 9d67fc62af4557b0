// The fallbacks the product promises: the server goes away and comes back, or the live stream
// alone is unavailable, and an open dashboard still shows every new lead exactly once without
// anyone touching the page.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { eventually, networkFailureOf, rowFor, startStack, toastLog, waitForConn } from './lib/harness.mjs';

const SPRING = '200000000000001';
const API_PATHS = ['/api/leads', '/api/leads/count', '/api/stream', '/api/stats', '/api/status', '/api/forms', '/api/pages'];

let s;
let page;
before(async () => {
  s = await startStack({ forms: [[SPRING, 'Spring form']] });
  ({ page } = await s.openDashboard());
});
after(async () => {
  await s?.close();
});
afterEach(() => s.watch.assertClean());

// Calls of the 3 s fallback check from now on; none while the stream is live.
function countChecks() {
  const seen = [];
  const onRequest = (req) => {
    if (new URL(req.url()).pathname === '/api/leads/count') seen.push(req.url());
  };
  page.on('request', onRequest);
  return () => {
    page.off('request', onRequest);
    return seen.length;
  };
}

async function connState() {
  return page.getAttribute('#conn-status', 'data-state');
}

// Every row and every toast of a lead, to prove it shows exactly once.
async function appearances(name) {
  return {
    rows: await rowFor(page, name).count(),
    toasts: (await toastLog(page)).filter((t) => t === `New lead: ${name} — Spring form`).length,
  };
}

describe('when the server restarts', () => {
  test('the indicator goes offline and back to live, and leads sent afterwards appear once, untouched', async (t) => {
    await s.meta.sendLead({ name: 'Before Restart', formId: SPRING });
    await rowFor(page, 'Before Restart').waitFor({ timeout: 5000 });

    // Requests the page makes while the server is down fail with these, and only these.
    const allowed = s.watch.expect(
      'requests to the stopped server',
      networkFailureOf(s.server.base, API_PATHS, ['ERR_CONNECTION_REFUSED']),
    );
    const stopped = await s.server.stop('SIGTERM');
    t.diagnostic(`SIGTERM → exit: ${stopped.ms} ms`);
    assert.equal(stopped.code, 0, 'a clean exit on SIGTERM');
    assert.ok(stopped.ms < 5000, `exit took ${stopped.ms} ms`);

    await waitForConn(page, 'checking', 3000);
    // The 3 s check finds nobody home.
    await waitForConn(page, 'offline', 5000);

    await s.server.start();
    // Sent before the page has noticed the server is back: the reconnect must pick it up.
    await s.meta.sendLead({ name: 'Right After Restart', formId: SPRING });
    const t0 = Date.now();
    await waitForConn(page, 'live', 5000);
    t.diagnostic(`server up → indicator live: ${Date.now() - t0} ms`);
    await rowFor(page, 'Right After Restart').waitFor({ timeout: 5000 });
    allowed();

    // Delivered by the stream, not by the fallback check (the disk's fsync may be slow on a
    // busy machine, so the time is not what proves it).
    const checks = countChecks();
    await s.meta.sendLead({ name: 'Later After Restart', formId: SPRING });
    await rowFor(page, 'Later After Restart').waitFor({ timeout: 5000 });
    assert.equal(checks(), 0, 'no count checks while live');

    // The session survived the restart, and nothing showed twice.
    assert.equal(new URL(page.url()).pathname, '/');
    assert.equal(await page.locator('#token').count(), 0);
    for (const name of ['Right After Restart', 'Later After Restart']) {
      await eventually(async () => assert.deepEqual(await appearances(name), { rows: 1, toasts: 1 }, name));
    }
    assert.equal(await rowFor(page, 'Before Restart').count(), 1);
    assert.equal(await connState(), 'live');
  });
});

describe('when only the live stream is unavailable', () => {
  test('the 3 s count check brings new leads in, and the stream takes over again when it is back', async (t) => {
    // A proxy that drops event streams: every attempt to open /api/stream fails.
    let blocked = 0;
    await page.route(/\/api\/stream(\?|$)/, (route) => {
      blocked += 1;
      return route.abort('failed');
    });
    const allowed = s.watch.expect(
      'the blocked stream, and requests during the short restart that breaks the open one',
      (e) =>
        networkFailureOf(s.server.base, ['/api/stream'], ['ERR_FAILED'])(e) ||
        networkFailureOf(s.server.base, API_PATHS, ['ERR_CONNECTION_REFUSED'])(e),
    );
    // The stream open now was established before the block; a quick restart ends it.
    await s.server.stop('SIGTERM');
    await s.server.start();
    await waitForConn(page, 'checking', 3000);
    await eventually(() => assert.ok(blocked >= 1, 'the page tried to reopen the stream'), { timeout: 8000 });

    const t0 = Date.now();
    await s.meta.sendLead({ name: 'Found By Polling', formId: SPRING });
    await rowFor(page, 'Found By Polling').waitFor({ timeout: 5000 });
    t.diagnostic(`lead found by the count check after ${Date.now() - t0} ms`);
    assert.notEqual(await connState(), 'live', 'the stream is still blocked');

    await page.unroute(/\/api\/stream(\?|$)/);
    await waitForConn(page, 'live', 5000);
    allowed();
    const checks = countChecks();
    await s.meta.sendLead({ name: 'Streamed Again', formId: SPRING });
    await rowFor(page, 'Streamed Again').waitFor({ timeout: 5000 });
    assert.equal(checks(), 0, 'the stream brought it, not the count check');
    for (const name of ['Found By Polling', 'Streamed Again']) {
      await eventually(async () => assert.deepEqual(await appearances(name), { rows: 1, toasts: 1 }, name));
    }
  });
});
