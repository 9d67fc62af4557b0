// Two people on one dashboard, each in a browser context of their own, signed in with their
// own names: one claims a lead and moves it along; the other sees it within a second, without
// a reload. Notes survive a restart. Everything by keyboard or click, as a person would.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { networkFailureOf, recordToasts, rowFor, startStack, waitForConn } from './lib/harness.mjs';

const SPRING = '200000000000001';
const PASSWORD = 'a long enough password';

let s;
before(async () => {
  s = await startStack({ forms: [[SPRING, 'Spring form']] });
  for (const name of ['ada', 'grace']) {
    await s.server.api('/api/users', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, password: PASSWORD }),
    });
  }
});
after(async () => {
  await s?.close();
});
afterEach(() => s.watch.assertClean());

// A context of its own, signed in through the login page with a name and password.
async function signIn(name) {
  const context = await s.browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' });
  s.watch.attach(context);
  await recordToasts(context);
  const page = await context.newPage();
  await page.goto(s.server.base + '/');
  await page.fill('#name', name);
  await page.fill('#password', PASSWORD);
  await page.press('#password', 'Enter');
  await waitForConn(page, 'live');
  return page;
}

describe('two people work the same leads', () => {
  test('one claims and moves a lead; the other sees it within a second; notes survive a restart', async (t) => {
    const ada = await signIn('ada');
    const grace = await signIn('grace');
    await s.meta.sendLead({ name: 'Shared Lead', formId: SPRING });
    await rowFor(ada, 'Shared Lead').waitFor({ timeout: 5000 });
    await rowFor(grace, 'Shared Lead').waitFor({ timeout: 5000 });
    assert.equal(await rowFor(grace, 'Shared Lead').locator('.chip').textContent(), 'New');

    // Ada claims it in one click, from the row.
    let t0 = Date.now();
    await rowFor(ada, 'Shared Lead').locator('button.claim').click();
    await rowFor(grace, 'Shared Lead').locator('.owner-name', { hasText: 'ada' }).waitFor({ timeout: 1000 });
    t.diagnostic(`claim → other screen: ${Date.now() - t0} ms`);
    assert.equal(await rowFor(grace, 'Shared Lead').locator('button.claim').isHidden(), true);

    // Then opens it with the keyboard and moves it to "contacted".
    await rowFor(ada, 'Shared Lead').focus();
    await ada.keyboard.press('Enter');
    await ada.locator('#lead-detail[open]').waitFor();
    t0 = Date.now();
    await ada.selectOption('#detail-status', 'contacted');
    await rowFor(grace, 'Shared Lead').locator('.chip', { hasText: 'Contacted' }).waitFor({ timeout: 1000 });
    t.diagnostic(`status → other screen: ${Date.now() - t0} ms`);

    // Grace's filter "Nobody's" no longer shows it; "Mine" for Ada does.
    await grace.selectOption('#filter-owner', 'none');
    await rowFor(grace, 'Shared Lead').waitFor({ state: 'detached', timeout: 3000 });
    await grace.selectOption('#filter-owner', '');
    await rowFor(grace, 'Shared Lead').waitFor({ timeout: 3000 });

    // A note, typed and sent with the keyboard.
    await ada.fill('#note-text', 'Called back: wants a quote on Friday.');
    await ada.locator('#note-form button[type=submit]').press('Enter');
    await ada.locator('#detail-notes li', { hasText: 'wants a quote' }).waitFor({ timeout: 3000 });
    await ada.locator('#detail-history li', { hasText: 'status New → Contacted' }).waitFor({ timeout: 3000 });

    // Grace opens it; the server restarts under both pages.
    await rowFor(grace, 'Shared Lead').click();
    await grace.locator('#lead-detail[open]').waitFor();
    const down = s.watch.expect('requests to the restarting server', networkFailureOf(
      s.server.base,
      ['/api/leads', '/api/leads/count', '/api/stream', '/api/stats', '/api/status', '/api/forms', '/api/pages', '/api/users'],
      ['ERR_CONNECTION_REFUSED'],
    ));
    await s.server.stop('SIGTERM');
    await s.server.start();
    await waitForConn(ada, 'live', 10000);
    await waitForConn(grace, 'live', 10000);
    down();
    const lead = (await s.server.api('/api/leads?q=Shared')).leads[0];
    await s.server.api(`/api/leads/${lead.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'qualified', version: lead.version }),
    });
    // The stream brings the change to Grace's open detail at once.
    await grace.waitForFunction(() => document.getElementById('detail-status').value === 'qualified', null, { timeout: 3000 });

    // The note survived the restart.
    await grace.locator('#detail-notes li', { hasText: 'wants a quote' }).waitFor({ timeout: 3000 });
    const detail = await s.server.api(`/api/leads/${lead.id}`);
    assert.equal(detail.notes.length, 1);
    assert.equal(detail.notes[0].author, 'ada');
  });

  test('a stale edit shows what changed meanwhile and a retry goes through', async () => {
    // Without the stream (blocked from the start) the open detail cannot hear of the change
    // someone else makes, so the page's edit is made on an old version.
    const blocked = s.watch.expect('the blocked stream', networkFailureOf(s.server.base, ['/api/stream'], ['ERR_FAILED']));
    const refused = s.watch.expect('the 409 of the stale edit', (e) =>
      e.kind === 'console' && /status of 409/.test(e.text));
    const context = await s.browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' });
    s.watch.attach(context);
    await context.route('**/api/stream*', (route) => route.abort());
    const grace = await context.newPage();
    await grace.goto(s.server.base + '/');
    await grace.fill('#name', 'grace');
    await grace.fill('#password', PASSWORD);
    await grace.press('#password', 'Enter');
    await s.meta.sendLead({ name: 'Raced Lead', formId: SPRING });
    await rowFor(grace, 'Raced Lead').waitFor({ timeout: 10000 });
    await rowFor(grace, 'Raced Lead').click();
    await grace.locator('#lead-detail[open]').waitFor();
    const lead = (await s.server.api('/api/leads?q=Raced')).leads[0];
    await s.server.api(`/api/leads/${lead.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ owner: 'ada', version: lead.version }),
    });
    await grace.selectOption('#detail-status', 'lost');
    const conflict = grace.locator('#detail-conflict');
    await conflict.waitFor({ state: 'visible', timeout: 3000 });
    assert.match(await conflict.textContent(), /owner is now ada/);
    assert.equal(await grace.inputValue('#detail-owner'), 'ada', 'the current lead is shown');
    assert.equal(await grace.inputValue('#detail-status'), 'new', 'the edit was not made');
    // Trying again, on the version now shown, goes through.
    await grace.selectOption('#detail-status', 'lost');
    await conflict.waitFor({ state: 'hidden', timeout: 3000 });
    const after = await s.server.api(`/api/leads/${lead.id}`);
    assert.equal(after.status, 'lost');
    assert.equal(after.owner, 'ada');
    await context.close();
    blocked();
    refused();
  });
});
