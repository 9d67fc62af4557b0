// Signing in and out of the dashboard, in a real browser against the real server.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { DASHBOARD_TOKEN, startStack, waitForConn } from './lib/harness.mjs';

describe('signing in', () => {
  let s;
  before(async () => {
    s = await startStack();
  });
  after(async () => {
    await s?.close();
  });
  afterEach(() => s.watch.assertClean());

  async function freshPage() {
    const context = await s.browser.newContext();
    s.watch.attach(context);
    return { context, page: await context.newPage() };
  }

  async function sessionCookie(context) {
    return (await context.cookies()).find((c) => c.name === 'leadstream_session');
  }

  // A failed sign-in answers 401 (so scripts and log watchers see a refusal); Chromium logs
  // every 4xx document as "Failed to load resource", which is that answer and nothing else.
  function expectRefusal(status) {
    return s.watch.expect(`the ${status} of a refused sign-in`, (e) =>
      e.kind === 'console' &&
      (e.url === s.server.base + '/login' || e.url.startsWith(s.server.base + '/login?')) &&
      e.text.startsWith(`Failed to load resource: the server responded with a status of ${status} `));
  }

  test('the start page without a session is a sign-in form and shows no leads', async () => {
    const { context, page } = await freshPage();
    const res = await page.goto(s.server.base + '/');
    assert.equal(res.status(), 200);
    assert.equal(await page.title(), 'Sign in · leadstream');
    assert.equal(await page.getAttribute('#token', 'type'), 'password');
    assert.equal(await page.locator('#leads').count(), 0, 'no lead table before signing in');
    assert.equal((await page.textContent('#login-error')).trim(), '');
    // The page is strict about what it may load and run.
    const csp = res.headers()['content-security-policy'] || '';
    assert.match(csp, /script-src 'self'/);
    await context.close();
  });

  test('a wrong token shows an error and sets no session', async () => {
    const { context, page } = await freshPage();
    await page.goto(s.server.base + '/');
    const done = expectRefusal(401);
    await page.fill('#token', 'not-the-token-at-all');
    const [res] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    done();
    assert.equal(res.status(), 401);
    assert.equal((await page.textContent('#login-error')).trim(), 'That token is not right.');
    assert.equal(await page.locator('#leads').count(), 0);
    assert.equal(await sessionCookie(context), undefined);
    await context.close();
  });

  test('the right token opens the dashboard with an HttpOnly, SameSite=Strict session', async () => {
    const { context, page } = await freshPage();
    await page.goto(s.server.base + '/');
    await page.fill('#token', DASHBOARD_TOKEN);
    await Promise.all([page.waitForURL(s.server.base + '/'), page.click('button[type=submit]')]);
    assert.equal(await page.title(), 'leadstream');
    await waitForConn(page, 'live');
    const cookie = await sessionCookie(context);
    assert.ok(cookie, 'a session cookie is set');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.value.includes(DASHBOARD_TOKEN), false, 'the cookie is not the token');
    await context.close();
  });

  test('a ?token= link signs in once and the token is gone from the address bar', async () => {
    const { context, page } = await freshPage();
    await page.goto(`${s.server.base}/?token=${DASHBOARD_TOKEN}`);
    await waitForConn(page, 'live');
    assert.equal(page.url(), s.server.base + '/');
    assert.equal(await page.evaluate(() => location.search), '');
    // Nor is it in the history: one step back is the blank tab this page was opened from.
    await page.goBack();
    assert.equal(page.url(), 'about:blank');
    await context.close();
  });

  test('a shared link to a filtered view opens that view once signed in', async () => {
    const { context, page } = await freshPage();
    await page.goto(`${s.server.base}/?q=ada&sort=name&order=asc`);
    await page.locator('#token').waitFor();
    const done = expectRefusal(401);
    await page.fill('#token', 'a-wrong-guess-first');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    done();
    // A wrong guess does not lose the view either.
    await page.fill('#token', DASHBOARD_TOKEN);
    await Promise.all([page.waitForURL(/\?/), page.click('button[type=submit]')]);
    await waitForConn(page, 'live');
    assert.equal(new URL(page.url()).search, '?q=ada&sort=name&order=asc');
    assert.equal(await page.inputValue('#search'), 'ada');
    assert.equal(await page.getAttribute('th[data-col="name"]', 'aria-sort'), 'ascending');
    await context.close();
  });

  test('logging out returns to the sign-in page and ends the session on the server', async () => {
    const { context, page } = await freshPage();
    await page.goto(`${s.server.base}/?token=${DASHBOARD_TOKEN}`);
    await waitForConn(page, 'live');
    const before = await sessionCookie(context);
    await Promise.all([page.waitForURL(s.server.base + '/'), page.click('form.logout button')]);
    await page.locator('#token').waitFor();
    assert.equal(await page.title(), 'Sign in · leadstream');
    assert.equal(await sessionCookie(context), undefined, 'the browser dropped the cookie');
    // A copy of the old cookie opens nothing any more.
    const res = await fetch(s.server.base + '/api/leads/count', {
      headers: { cookie: `leadstream_session=${before.value}` },
    });
    assert.equal(res.status, 401);
    await context.close();
  });

  // Last in this file: it locks 127.0.0.1 out of signing in for a minute.
  test('after ten wrong tokens even the right one is refused for a while', async () => {
    // The ten guesses come from a script on the same address, as an attacker's would.
    for (let i = 0; i < 10; i++) {
      const r = await fetch(s.server.base + '/login', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=wrong-${i}-token`,
        redirect: 'manual',
      });
      await r.arrayBuffer();
      assert.equal(r.status, 401);
    }
    const { context, page } = await freshPage();
    await page.goto(s.server.base + '/');
    const done = expectRefusal(429);
    await page.fill('#token', DASHBOARD_TOKEN);
    const [res] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    done();
    assert.equal(res.status(), 429);
    assert.match(await page.textContent('#login-error'), /Too many attempts/);
    assert.equal(await sessionCookie(context), undefined);
    await context.close();
  });
});
