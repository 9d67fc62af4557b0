// Erasing a lead while a dashboard shows it: the row goes at once, the open detail view
// closes, and the count follows, without a reload.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { eventually, rowFor, startStack } from './lib/harness.mjs';

const SPRING = '200000000000001';

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

test('an erased lead leaves the open page: its row, its detail view and the count', async () => {
  await s.meta.sendLead({ name: 'Stays Here', email: 'stays@example.com', formId: SPRING });
  await s.meta.sendLead({ name: 'Erase Me', email: 'erase.me@example.com', formId: SPRING });
  await rowFor(page, 'Erase Me').waitFor({ timeout: 8000 });
  await rowFor(page, 'Stays Here').waitFor({ timeout: 8000 });
  await eventually(async () => assert.match(await page.textContent('#total-count'), /^2 of 2 leads$/));

  await rowFor(page, 'Erase Me').click();
  await page.locator('#lead-detail[open]').waitFor();
  const { leads } = await s.server.api('/api/leads?q=erase.me');
  assert.equal(leads.length, 1);
  assert.deepEqual(await s.server.api(`/api/leads/${leads[0].id}`, { method: 'DELETE' }), { erased: leads[0].id });

  await rowFor(page, 'Erase Me').waitFor({ state: 'detached', timeout: 3000 });
  await page.locator('#lead-detail:not([open])').waitFor({ state: 'attached' });
  assert.equal(await rowFor(page, 'Stays Here').count(), 1);
  await eventually(async () => assert.match(await page.textContent('#total-count'), /^1 of 1 lead$/));
  const html = await page.content();
  for (const word of ['Erase Me', 'erase.me@example.com']) {
    assert.ok(!html.includes(word), `${word} is still on the page (the row, the dialog or a toast)`);
  }
});
