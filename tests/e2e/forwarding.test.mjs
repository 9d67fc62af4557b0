// The settings view in a real browser: adding a webhook destination, sending a test and seeing
// the delivery listed, a new lead forwarded; and the opt-in notifications for new leads.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { eventually, startStack } from './lib/harness.mjs';

const FORM = '200000000000009';

// A webhook receiver on this machine that records each request's event type and headers.
async function startReceiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: JSON.parse(body) });
      res.end('ok');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { got, url: `http://127.0.0.1:${server.address().port}/hook`, close: () => server.close() };
}

let s;
let receiver;
before(async () => {
  s = await startStack({ forms: [[FORM, 'Kitchen form']] });
  receiver = await startReceiver();
});
after(async () => {
  receiver?.close();
  await s?.close();
});
afterEach(() => s.watch.assertClean());

describe('forwarding in the settings view', () => {
  test('add a webhook, send a test and see the delivery listed; a new lead is forwarded too', async () => {
    const { page } = await s.openDashboard();
    await page.click('#settings-button');
    await page.locator('#settings[open]').waitFor();
    assert.equal(await page.isVisible('#destinations-empty'), true);
    await page.fill('#destination-target', receiver.url);
    await page.click('#destination-form button[type=submit]');
    const secret = page.locator('#destination-secret-value');
    await secret.waitFor();
    assert.match(await secret.textContent(), /^whsec_[A-Za-z0-9+/=]{40,}$/);
    const item = page.locator('#destination-list li.destination');
    await item.waitFor();
    assert.equal(await item.locator('.destination-name').textContent(), 'Webhook to ' + new URL(receiver.url).origin);

    await item.locator('.destination-test').click();
    await eventually(() => assert.equal(receiver.got.filter((r) => r.body.type === 'test').length, 1), { timeout: 8000 });
    const test = receiver.got.find((r) => r.body.type === 'test');
    assert.match(test.headers['webhook-signature'], /^v1,/);
    assert.match(test.headers['webhook-id'], /^msg_/);
    await item.locator('.deliveries li', { hasText: /^test: delivered/ }).waitFor({ timeout: 8000 });

    await s.meta.sendLead({ name: 'Forwarded Person', formId: FORM });
    await eventually(() => assert.ok(receiver.got.some((r) => r.body.type === 'lead.created')), { timeout: 8000 });
    const lead = receiver.got.find((r) => r.body.type === 'lead.created');
    assert.equal(lead.body.data.fields.full_name, 'Forwarded Person');
    await item.locator('.deliveries li', { hasText: /^lead\.created #\d+: delivered/ }).waitFor({ timeout: 8000 });
    assert.match(await item.locator('.destination-counts').textContent(), /^2 delivered · 0 waiting · 0 dead/);
  });
});

describe('browser notifications', () => {
  test('off by default, permission asked on the click, remembered, and a new lead notifies', async () => {
    const { context, page } = await s.openDashboard();
    await context.grantPermissions(['notifications'], { origin: s.server.base });
    // Every notification the page makes, by title.
    await context.addInitScript(() => {
      const Real = window.Notification;
      window.__notes = [];
      window.Notification = class extends Real {
        constructor(title, options) {
          super(title, options);
          window.__notes.push(title);
        }
      };
    });
    await page.reload();
    await page.locator('#conn-status[data-state="live"]').waitFor({ timeout: 8000 });
    await page.click('#settings-button');
    const toggle = page.locator('#notify-toggle');
    assert.equal(await toggle.isChecked(), false, 'off until asked for');
    assert.equal(await page.locator('#notify-sound').isDisabled(), true);
    await toggle.check();
    await eventually(async () => assert.equal(await page.evaluate(() => localStorage.getItem('leadstream.notify')), 'on'));
    assert.equal(await page.locator('#notify-sound').isDisabled(), false);
    await page.click('#settings-close');

    await s.meta.sendLead({ name: 'Notified Person', formId: FORM });
    await eventually(async () => assert.deepEqual(await page.evaluate(() => window.__notes), ['New lead: Notified Person — Kitchen form']), { timeout: 8000 });

    // Remembered after a reload; unticked, no more notifications.
    await page.reload();
    await page.locator('#conn-status[data-state="live"]').waitFor({ timeout: 8000 });
    await page.click('#settings-button');
    assert.equal(await toggle.isChecked(), true);
    await toggle.uncheck();
    await page.click('#settings-close');
    await s.meta.sendLead({ name: 'Quiet Person', formId: FORM });
    await page.locator('#leads tr.lead-row .col-name', { hasText: 'Quiet Person' }).waitFor({ timeout: 8000 });
    assert.deepEqual(await page.evaluate(() => window.__notes), []);
  });
});
