// The signed-in dashboard against the real server: leads arriving live, untrusted values,
// the detail view, statistics, search, filters and sorting.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { eventually, metaId, rowFor, rowNames, startStack, toastLog } from './lib/harness.mjs';

const SPRING = '200000000000001';
const AUTUMN = '200000000000002';
const WEBINAR = '200000000000003';
const DAY = 86400 * 1000;
const HOUR = 3600 * 1000;
const utcDay = (d) => d.toISOString().slice(0, 10);

let s;
let page;
before(async () => {
  s = await startStack({
    forms: [
      [SPRING, 'Spring form'],
      [AUTUMN, 'Autumn form'],
      [WEBINAR, 'Webinar sign-up'],
    ],
  });
  ({ page } = await s.openDashboard());
});
after(async () => {
  await s?.close();
});
afterEach(() => s.watch.assertClean());

// Waits until the server has saved `n` leads in all (the worker fetches each from Graph).
async function savedCount(n) {
  await eventually(async () => assert.equal((await s.server.api('/api/leads/count')).count, n), { timeout: 8000 });
}

async function numberIn(selector) {
  return Number((await page.textContent(selector)).replace(/[^\d]/g, ''));
}

describe('leads arriving live', () => {
  test('a lead sent by webhook is at the top of the list within a second, with a toast naming its form', async (t) => {
    const t0 = Date.now();
    await s.meta.sendLead({ name: 'Ada Lovelace', email: 'ada@example.com', phone: '+44 20 7946 0018', formId: SPRING });
    await rowFor(page, 'Ada Lovelace').waitFor({ timeout: Math.max(1, 1000 - (Date.now() - t0)) });
    const ms = Date.now() - t0;
    t.diagnostic(`webhook → row on screen: ${ms} ms`);
    assert.ok(ms < 1000, `took ${ms} ms`);
    assert.equal((await rowNames(page))[0], 'Ada Lovelace');
    const row = rowFor(page, 'Ada Lovelace');
    assert.equal(await row.locator('.col-email').textContent(), 'ada@example.com');
    assert.equal(await row.locator('.col-form').textContent(), 'Spring form');
    // The name comes from Graph's /{form_id} (or the page's form list), never made up.
    await page.locator('.toast .toast-text', { hasText: 'New lead: Ada Lovelace' }).waitFor();
    assert.deepEqual(await toastLog(page), ['New lead: Ada Lovelace — Spring form']);
    assert.deepEqual(s.graph.refused, [], 'every Graph call carried the token and a valid appsecret_proof');
  });

  test('the same lead delivered again by Meta shows once and is not announced again', async () => {
    const before = (await toastLog(page)).length;
    // Meta redelivers whole batches; replay the last webhook body byte for byte.
    const id = [...s.graph.leads.keys()].at(-1);
    const body = JSON.stringify({
      object: 'page',
      entry: [{ id: '104857600000001', time: 1, changes: [{ field: 'leadgen', value: { leadgen_id: id, page_id: '104857600000001', form_id: SPRING } }] }],
    });
    assert.equal(await s.meta.postWebhook(body), 200);
    // A marker lead sent after it proves the page has seen everything up to here.
    await s.meta.sendLead({ name: 'Marker After Redelivery', formId: SPRING });
    await rowFor(page, 'Marker After Redelivery').waitFor({ timeout: 5000 });
    assert.equal(await rowFor(page, 'Ada Lovelace').count(), 1);
    assert.deepEqual((await toastLog(page)).slice(before), ['New lead: Marker After Redelivery — Spring form']);
  });

  test('lead values that look like HTML are shown as text and run nothing', async () => {
    const name = '<img src=x onerror=window.__xss=1>';
    const answer = '<script>window.__xss=2</script>';
    const email = '"><svg onload=window.__xss=3>@example.com';
    await s.meta.sendLead({ name, email, formId: SPRING, extra: [['message', answer]] });
    const row = rowFor(page, 'onerror');
    await row.waitFor({ timeout: 5000 });
    assert.equal(await row.locator('.col-name').textContent(), name);
    assert.equal(await row.locator('.col-email').textContent(), email);
    await eventually(async () => assert.ok((await toastLog(page)).includes(`New lead: ${name} — Spring form`)));

    // The detail view renders the answers too.
    await row.click();
    await page.locator('#lead-detail[open]').waitFor();
    assert.equal(await page.textContent('#detail-title'), name);
    const answers = await page.locator('#detail-answers dd').allTextContents();
    assert.ok(answers.includes(answer), `answers: ${JSON.stringify(answers)}`);

    const dom = await page.evaluate(() => ({
      imgs: document.querySelectorAll('img').length,
      svgInBody: document.querySelectorAll('svg:not(#per-day-chart):not(.per-form-bar)').length,
      scripts: [...document.scripts].map((x) => x.getAttribute('src')),
      handlers: [...document.querySelectorAll('*')].flatMap((el) =>
        [...el.attributes].filter((a) => a.name.startsWith('on')).map((a) => `${el.tagName}[${a.name}]`)),
      xss: window.__xss,
    }));
    assert.deepEqual(dom, { imgs: 0, svgInBody: 0, scripts: ['/assets/main.js'], handlers: [], xss: undefined });
    await page.click('#detail-close');
    await page.locator('#lead-detail:not([open])').waitFor({ state: 'attached' });
  });

  test('the detail view shows every answer, several values included, and closes with Escape', async () => {
    await s.meta.sendLead({
      formId: WEBINAR,
      fields: [
        ['full_name', 'Katherine Johnson'],
        ['email', 'katherine@example.org'],
        ['phone_number', '+1 757 555 0142'],
        ['city', 'White Sulphur Springs'],
        ['what_is_your_budget?', '€5,000–€10,000'],
        ['interests', ['Orbital mechanics', 'Navigation']],
        ['consent', 'yes'],
      ],
    });
    const row = rowFor(page, 'Katherine Johnson');
    await row.waitFor({ timeout: 5000 });
    await row.click();
    await page.locator('#lead-detail[open]').waitFor();
    const rows = await page.$$eval('#detail-answers .kv-row', (els) =>
      els.map((r) => [r.querySelector('dt').textContent, [...r.querySelectorAll('dd')].map((d) => d.textContent)]));
    assert.deepEqual(rows, [
      ['Full name', ['Katherine Johnson']],
      ['Email', ['katherine@example.org']],
      ['Phone number', ['+1 757 555 0142']],
      ['City', ['White Sulphur Springs']],
      ['What is your budget?', ['€5,000–€10,000']],
      ['Interests', ['Orbital mechanics', 'Navigation']],
      ['Consent', ['yes']],
    ]);
    assert.equal(await page.getAttribute('#detail-answers a[href^="mailto:"]', 'href'), 'mailto:katherine@example.org');
    assert.equal(await page.getAttribute('#detail-answers a[href^="tel:"]', 'href'), 'tel:+17575550142');
    const meta = await page.locator('#detail-meta').textContent();
    assert.match(meta, /Webinar sign-up/);
    await page.keyboard.press('Escape');
    await page.locator('#lead-detail:not([open])').waitFor({ state: 'attached' });
  });

  test('Sync with Meta brings in a lead the webhooks missed, and says what it did in a toast', async () => {
    // In Graph, but never announced by a webhook.
    s.graph.addLead({ id: metaId(), formId: WEBINAR, fields: [['full_name', 'Missed By Webhook'], ['email', 'missed@example.com']] });
    await page.click('#sync-button');
    await eventually(async () => {
      const texts = await toastLog(page);
      assert.ok(texts.some((t) => /^Synced 3 forms: \d+ fetched, 1 new$/.test(t)), JSON.stringify(texts));
    }, { timeout: 8000 });
    await rowFor(page, 'Missed By Webhook').waitFor({ timeout: 5000 });
    assert.equal(await page.textContent('#sync-button'), 'Sync with Meta');
    assert.equal(await page.isEnabled('#sync-button'), true);
    // A second sync finds nothing new: the same save path never makes a duplicate.
    await page.click('#sync-button');
    await eventually(async () => {
      const texts = await toastLog(page);
      assert.ok(texts.some((t) => /^Synced 3 forms: \d+ fetched, 0 new$/.test(t)), JSON.stringify(texts));
    }, { timeout: 8000 });
    assert.equal(await rowFor(page, 'Missed By Webhook').count(), 1);
  });

  test('statistics count today, the last 7 days and the total, and the per-day chart has bars', async () => {
    const { count } = await s.server.api('/api/leads/count');
    const before = await s.server.api('/api/stats');
    const now = Date.now();
    await s.meta.sendLead({ name: 'Today Person', formId: AUTUMN, created: new Date(now - 60 * 1000) });
    await s.meta.sendLead({ name: 'Three Days Ago', formId: AUTUMN, created: new Date(now - 3 * DAY) });
    await s.meta.sendLead({ name: 'Twenty Days Ago', formId: AUTUMN, created: new Date(now - 20 * DAY) });
    await savedCount(count + 3);
    await eventually(async () => {
      assert.equal(await numberIn('#stats-today'), before.today + 1);
      assert.equal(await numberIn('#stats-week'), before.last_7_days + 2);
      assert.equal(await numberIn('#stats-total'), before.total + 3);
    }, { timeout: 5000 });

    const bars = await page.$$eval('#per-day-chart g.bar', (gs) =>
      gs.map((g) => ({
        day: g.dataset.day,
        count: Number(g.dataset.count),
        height: Number(g.querySelector('rect').getAttribute('height')),
        today: g.classList.contains('today'),
      })));
    assert.equal(bars.length, 30);
    const byDay = Object.fromEntries(bars.map((b) => [b.day, b]));
    const today = byDay[utcDay(new Date(now))];
    assert.ok(today && today.today, 'the last bar is today');
    assert.equal(today.count, before.today + 1);
    for (const ago of [3, 20]) {
      const bar = byDay[utcDay(new Date(now - ago * DAY))];
      assert.ok(bar.count >= 1 && bar.height > 1, `a visible bar ${ago} days ago: ${JSON.stringify(bar)}`);
    }
    const empty = bars.filter((b) => b.count === 0);
    assert.ok(empty.every((b) => b.height <= 1), 'days without leads stay flat');

    const perForm = await page.$$eval('#per-form .per-form-item', (items) =>
      items.map((b) => [b.querySelector('.per-form-name').textContent, b.querySelector('.per-form-count').textContent]));
    assert.ok(perForm.some(([n, c]) => n === 'Autumn form' && Number(c) >= 3), JSON.stringify(perForm));
    assert.ok(perForm.some(([n]) => n === 'Spring form'), JSON.stringify(perForm));
  });
});

describe('finding leads', () => {
  const autumn = [
    // name, hours before now it was created (sent in this order)
    ['Edsger Dijkstra', 4],
    ['barbara Liskov', 5],
    ['Alan Turing', 1],
    ['Donald Knuth', 2],
    ['Grace Hopper', 3],
  ];
  let autumnBefore;

  before(async () => {
    autumnBefore = (await s.server.api(`/api/leads?form_id=${AUTUMN}&limit=1000`)).leads.map((l) => l.fields.full_name);
    const { count } = await s.server.api('/api/leads/count');
    const now = Date.now();
    // One at a time, each saved before the next is sent: the worker fetches leads
    // concurrently, so leads sent back to back may be saved (and so "received") in any order.
    for (const [i, [name, hours]] of autumn.entries()) {
      const first = name.split(' ')[0].toLowerCase();
      await s.meta.sendLead({ name, email: `${first}@example.com`, formId: AUTUMN, created: new Date(now - hours * HOUR) });
      await savedCount(count + i + 1);
    }
    await s.meta.sendLead({ name: 'Niklaus Wirth', formId: WEBINAR, extra: [['city', 'Zürich']] });
    await s.meta.sendLead({ name: 'Tim Berners-Lee', formId: WEBINAR, created: new Date(now - 10 * DAY) });
    await savedCount(count + autumn.length + 2);
  });

  // A fresh, unfiltered view with the list loaded.
  async function openList(query = '') {
    await page.goto(`${s.server.base}/${query ? '?' + query : ''}`);
    await page.locator('#total-count:not(:empty)').waitFor();
  }

  test('typing in the search box narrows the list to matching leads and keeps q in the URL', async () => {
    await openList();
    const all = (await rowNames(page)).length;
    await page.fill('#search', 'hopper');
    await eventually(async () => assert.deepEqual(await rowNames(page), ['Grace Hopper']));
    assert.equal(new URL(page.url()).searchParams.get('q'), 'hopper');
    assert.equal(await page.locator('#clear-filters').isVisible(), true);

    // Any answer is searched, accents and case included; the view survives a reload.
    await page.fill('#search', 'ZÜRICH');
    await eventually(async () => assert.deepEqual(await rowNames(page), ['Niklaus Wirth']));
    await page.reload();
    assert.equal(await page.inputValue('#search'), 'ZÜRICH');
    await eventually(async () => assert.deepEqual(await rowNames(page), ['Niklaus Wirth']));

    await page.fill('#search', 'nobody-has-this');
    await eventually(async () => assert.deepEqual(await rowNames(page), []));
    assert.equal((await page.textContent('#empty')).trim(), 'No leads match these filters.');

    await page.click('#clear-filters');
    await eventually(async () => assert.equal((await rowNames(page)).length, all));
    assert.equal(new URL(page.url()).search, '');
  });

  test('choosing a form shows only that form\u2019s leads, and the export links follow the view', async () => {
    await openList();
    await page.selectOption('#filter-form', AUTUMN);
    const expected = [...autumnBefore, ...autumn.map(([n]) => n)].sort();
    await eventually(async () => assert.deepEqual((await rowNames(page)).sort(), expected));
    const forms = new Set(await page.$$eval('#leads .col-form', (tds) => tds.map((td) => td.textContent)));
    assert.deepEqual([...forms], ['Autumn form']);
    assert.equal(new URL(page.url()).searchParams.get('form_id'), AUTUMN);
    assert.equal(await page.getAttribute('#csv-link', 'href'), `/api/leads.csv?form_id=${AUTUMN}&sort=received_at&order=desc`);
    assert.match(await page.getAttribute('#pdf-link', 'href'), new RegExp(`^/api/report\\.pdf\\?form_id=${AUTUMN}&`));
  });

  test('a date range shows only leads created in it', async () => {
    await openList();
    const now = Date.now();
    await page.fill('#since', utcDay(new Date(now - 11 * DAY)));
    await page.fill('#until', utcDay(new Date(now - 9 * DAY)));
    await eventually(async () => assert.deepEqual(await rowNames(page), ['Tim Berners-Lee']));
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('since'), utcDay(new Date(now - 11 * DAY)));
  });

  test('clicking a column header sorts by it, and clicking again reverses the order', async () => {
    await openList(`form_id=${AUTUMN}&q=example.com`);
    // Newest received first by default: the order they were sent in, reversed.
    const received = autumn.map(([n]) => n).reverse();
    await eventually(async () => assert.deepEqual(await rowNames(page), received));

    await page.click('button[data-sort="name"]');
    const byName = ['Alan Turing', 'barbara Liskov', 'Donald Knuth', 'Edsger Dijkstra', 'Grace Hopper'];
    await eventually(async () => assert.deepEqual(await rowNames(page), byName));
    assert.equal(await page.getAttribute('th[data-col="name"]', 'aria-sort'), 'ascending');
    const url = new URL(page.url());
    assert.deepEqual([url.searchParams.get('sort'), url.searchParams.get('order')], ['name', 'asc']);

    await page.click('button[data-sort="name"]');
    await eventually(async () => assert.deepEqual(await rowNames(page), [...byName].reverse()));
    assert.equal(await page.getAttribute('th[data-col="name"]', 'aria-sort'), 'descending');

    await page.click('button[data-sort="created_time"]');
    const byCreated = [...autumn].sort((a, b) => a[1] - b[1]).map(([n]) => n);
    await eventually(async () => assert.deepEqual(await rowNames(page), byCreated));
    assert.equal(await page.getAttribute('th[data-col="created_time"]', 'aria-sort'), 'descending');
    assert.equal(await page.getAttribute('th[data-col="name"]', 'aria-sort'), 'none');
  });
});

describe('the console watch', () => {
  test('catches an error the page logs, so a clean run means something', async () => {
    await page.evaluate(() => console.error('e2e: deliberate error'));
    await eventually(() => assert.equal(s.watch.seen.length, 1));
    assert.throws(() => s.watch.assertClean(), /deliberate error/);
  });
});
