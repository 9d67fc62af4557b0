// The dashboard as people see it, with a realistic set of leads: desktop (1280×800) and phone
// (390×844) screenshots go to tests/e2e/screenshots/ (gitignored; docs/screenshot.png is a copy
// of the desktop one), and both layouts are checked for content that spills off the screen.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { eventually, rowFor, rowNames, screenshotPath, startStack } from './lib/harness.mjs';

const FORMS = [
  ['310000000000001', 'Spring campaign'],
  ['310000000000002', 'Kitchen quote'],
  ['310000000000003', 'Newsletter sign-up'],
  ['310000000000004', 'Solar webinar'],
];
const [SPRING, KITCHEN, NEWSLETTER, WEBINAR] = FORMS.map(([id]) => id);
const HOUR = 3600 * 1000;

// Eleven leads from the past two weeks, sent before the page opens; a twelfth arrives live.
const PAST = [
  ['Zoë Castellanos', 'zoe.castellanos@example.com', '+34 612 48 19 07', SPRING, 13 * 24 + 5],
  ['José Álvarez', 'jose.alvarez@example.es', '+34 655 20 41 88', KITCHEN, 11 * 24 + 2],
  ['Ingrid Sønderby', 'ingrid@sonderby.example.dk', '+45 21 43 65 87', WEBINAR, 9 * 24 + 7],
  ['Mateusz Wójcik', 'm.wojcik@example.pl', '+48 501 234 567', SPRING, 8 * 24 + 1],
  ['Amélie Dubois', 'amelie.dubois@example.fr', '+33 6 12 34 56 78', KITCHEN, 6 * 24 + 3],
  ['Björn Lindqvist', 'bjorn.lindqvist@example.se', '+46 70 123 45 67', NEWSLETTER, 5 * 24 + 6],
  ['Nguyễn Thị Mai', 'mai.nguyen@example.vn', '+84 91 234 56 78', SPRING, 4 * 24 + 2],
  ['Siobhán O’Connor', 'siobhan.oconnor@example.ie', '+353 87 123 4567', WEBINAR, 3 * 24 + 4],
  ['Oğuz Yılmaz', 'oguz.yilmaz@example.com.tr', '+90 532 123 45 67', KITCHEN, 2 * 24 + 1],
  ['François Lefèvre', 'francois.lefevre@example.fr', '+33 7 81 22 90 14', SPRING, 26],
  ['Mariana Gonçalves', 'mariana.goncalves@example.pt', '+351 912 345 678', NEWSLETTER, 3],
];
const LIVE = ['Sofía Hernández', 'sofia.hernandez@example.mx', '+52 55 1234 5678', SPRING];

let s;
before(async () => {
  s = await startStack({ forms: FORMS });
  const now = Date.now();
  for (const [name, email, phone, formId, hoursAgo] of PAST) {
    await s.meta.sendLead({
      name,
      email,
      phone,
      formId,
      created: new Date(now - hoursAgo * HOUR),
      extra: [['city', 'Lisboa'], ['preferred_contact_time', 'Mornings']],
    });
  }
  await eventually(async () => assert.equal((await s.server.api('/api/leads/count')).count, PAST.length), { timeout: 10000 });
});
after(async () => {
  await s?.close();
});
afterEach(() => s.watch.assertClean());

// Visible elements that stick out of the window or out of the box that clips them. Exempt:
// text cut on purpose (an ellipsis), and the lead table's sideways scroller.
function overflowing(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const clipOf = (el) => {
      for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== 'visible') return p;
      }
      return null;
    };
    const out = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width <= 1 || r.height <= 1 || getComputedStyle(el).visibility === 'hidden') continue;
      const clip = clipOf(el);
      if (clip && (clip.classList.contains('table-wrap') || getComputedStyle(clip).textOverflow === 'ellipsis')) continue;
      const box = clip ? clip.getBoundingClientRect() : { left: 0, right: width };
      if (r.right > Math.min(box.right, width) + 0.5 || r.left < Math.max(box.left, 0) - 0.5) {
        const name = `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.classList.length ? '.' + [...el.classList].join('.') : ''}`;
        out.push(`${name} ${Math.round(r.left)}–${Math.round(r.right)} in ${Math.round(box.left)}–${Math.round(box.right)}`);
      }
    }
    return { width, scrollWidth: document.documentElement.scrollWidth, out: out.slice(0, 10) };
  });
}

describe('how the dashboard looks', () => {
  test('at desktop width (1280×800) it shows leads, statistics and a toast, and nothing spills over', async () => {
    const { page } = await s.openDashboard({ viewport: { width: 1280, height: 800 } });
    await eventually(async () => assert.equal((await rowNames(page)).length, PAST.length));
    const [name, email, phone, formId] = LIVE;
    await s.meta.sendLead({ name, email, phone, formId, created: new Date(), extra: [['city', 'Ciudad de México']] });
    await rowFor(page, name).waitFor({ timeout: 5000 });
    await page.locator('.toast').waitFor();
    await eventually(async () => assert.equal((await page.textContent('#stats-total')).trim(), String(PAST.length + 1)));
    await eventually(async () => assert.ok((await page.locator('#per-day-chart g.bar:not(.zero)').count()) >= 10));

    const o = await overflowing(page);
    assert.deepEqual(o.out, [], `spills over at ${o.width}px`);
    assert.equal(o.scrollWidth, o.width);
    // The whole header and the first rows are above the fold.
    for (const sel of ['#conn-status', '#sync-button', 'form.logout button', '#search']) {
      const box = await page.locator(sel).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 1280, `${sel} is on screen: ${JSON.stringify(box)}`);
    }
    await page.screenshot({ path: screenshotPath('dashboard-desktop.png') });
    await page.screenshot({ path: screenshotPath('dashboard-desktop-full.png'), fullPage: true });
    await page.context().close();
  });

  test('at phone width (390×844) every part fits the screen and a lead opens full width', async () => {
    const { page } = await s.openDashboard({ viewport: { width: 390, height: 844 } });
    const { count } = await s.server.api('/api/leads/count');
    await eventually(async () => assert.equal((await rowNames(page)).length, count));
    await page.locator('#per-day-chart g.bar').first().waitFor({ state: 'attached' });
    const o = await overflowing(page);
    assert.deepEqual(o.out, [], `spills over at ${o.width}px`);
    assert.equal(o.scrollWidth, o.width, 'no sideways scrolling');
    // Each lead reads as a card: every column on screen without sideways scrolling, and the
    // name and email not squeezed to nothing.
    const row = rowFor(page, 'Zoë Castellanos');
    for (const sel of ['.col-name', '.col-email', '.col-phone', '.col-form', '.col-created', '.col-received']) {
      const box = await row.locator(sel).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390.5, `${sel} is on screen: ${JSON.stringify(box)}`);
      if (sel === '.col-name' || sel === '.col-email') assert.ok(box.width >= 150, `${sel} is wide enough: ${JSON.stringify(box)}`);
    }
    await page.screenshot({ path: screenshotPath('dashboard-phone.png') });
    await page.screenshot({ path: screenshotPath('dashboard-phone-full.png'), fullPage: true });

    await row.click();
    await page.locator('#lead-detail[open]').waitFor();
    const box = await page.locator('#lead-detail').boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `the detail fits: ${JSON.stringify(box)}`);
    await page.screenshot({ path: screenshotPath('detail-phone.png') });
    await page.context().close();
  });

  // After the screenshots, so the pictures show ordinary leads.
  test('very long names, addresses and form names are cut or wrapped, never pushed off screen', async () => {
    const longForm = '310000000000099';
    s.graph.addForm('104857600000001', longForm, 'Autumn 2026 kitchen and bathroom renovation campaign, all regions');
    const name = 'Hubert Blaine Wolfeschlegelsteinhausenbergerdorff Sr.';
    await s.meta.sendLead({
      name,
      email: 'hubert.wolfeschlegelsteinhausenbergerdorff@a-very-long-company-domain.example.com',
      phone: '+49 30 1234567890 ext. 4711',
      formId: longForm,
    });
    for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
      const { page } = await s.openDashboard({ viewport });
      await rowFor(page, name).waitFor();
      await eventually(async () => assert.equal(await page.locator('#per-form .per-form-item').count(), FORMS.length + 1));
      const o = await overflowing(page);
      assert.deepEqual(o.out, [], `spills over at ${o.width}px`);
      assert.equal(o.scrollWidth, o.width, `no sideways scrolling at ${o.width}px`);
      // Every date column stays in view on a desktop-wide table.
      if (viewport.width >= 1280) {
        const wrap = await page.locator('.table-wrap').boundingBox();
        const received = await rowFor(page, name).locator('.col-received').boundingBox();
        assert.ok(received.x + received.width <= wrap.x + wrap.width + 0.5, 'the Received column is visible');
      }
      await page.context().close();
    }
  });
});
