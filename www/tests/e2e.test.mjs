// End-to-end: the pages against the real host on loopback, in Debian's
// Chromium. Each test gets its own host and fresh demo data (the Acme
// agency: olivia and oscar own it, ada is an admin, bea and ivan are basic).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { countStreaming, launch, openMenu, row, shot, signIn, startHost, watchModules } from './harness.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function withHost(f, options) {
  const host = await startHost(options);
  try {
    await f(host);
  } finally {
    await host.stop();
  }
}

const seats = async (page) => {
  const m = (await page.getByTestId('seats').textContent()).match(/Seats: (\d+) used of (\d+)/);
  assert.ok(m, 'the seat count is shown');
  return { used: Number(m[1]), total: Number(m[2]) };
};

test('a basic member sees every action disabled with its reason, from one batch call, equal to the server', async () => {
  await withHost(async (host) => {
    const page = await signIn(browser, host, 'bea@acme.test');
    await shot(page, 'users-basic');
    // The switcher's and the table's answers: one batch call each.
    assert.equal(await page.evaluate(() => window.gatehouse.stats.batchCalls), 2);
    const menu = await openMenu(page, 'olivia');
    await shot(page, 'users-basic-menu');
    const items = menu.locator('[role=menuitem]');
    const n = await items.count();
    assert.ok(n >= 6, `olivia's menu lists every action (${n})`);
    for (let i = 0; i < n; i++) {
      const item = items.nth(i);
      assert.equal(await item.getAttribute('aria-disabled'), 'true', `${await item.textContent()} is disabled for a basic member`);
      const why = await item.locator('.why').textContent();
      assert.ok(why.length > 10, `a disabled item says why: ${why}`);
      // The reason is tied to the item for screen readers, not a tooltip.
      const described = await item.getAttribute('aria-describedby');
      assert.equal(await page.locator(`#${described}`).textContent(), why);
    }
    // The page's module answers exactly as the server did, byte for byte.
    const same = await page.evaluate(async () => {
      const data = await (await fetch('/v1/accounts/agency/members')).json();
      const cells = (await window.gatehouse.ask(data.question)).cells;
      const server = data.members.map((m) => data.action_keys.map((k) => m.actions[k]));
      const page = cells.map((r) => r.map((d) => ({ allowed: d.allowed, reasons: d.reasons })));
      return JSON.stringify(server) === JSON.stringify(page);
    });
    assert.ok(same, 'browser and server decisions agree');
  });
});

test('a sub-account owner\'s Users page: the same disabled items and reasons as the server, from a question holding only that account', async () => {
  await withHost(async (host) => {
    const nina = await signIn(browser, host, 'nina@acme.test');
    await nina.goto(`${host.url}/#/a/east-1/users`);
    await nina.waitForSelector('table.users');
    await shot(nina, 'users-sub-account-owner');
    const data = await nina.evaluate(async () => (await fetch('/v1/accounts/east-1/members')).json());
    // Need to know: the question names east-1 and its members, nothing of the agency.
    const f = data.question.facts;
    assert.deepEqual(f.accounts.map((a) => a.id), ['east-1']);
    assert.ok(f.memberships.every((m) => m.account === 'east-1'), JSON.stringify(f.memberships));
    assert.deepEqual((f.users ?? []).map((u) => u.id).sort(), data.members.map((m) => m.user).sort());
    assert.equal((f.invitations ?? []).length + (f.owner_removal_requests ?? []).length, 0);
    // The page's module answers that question exactly as the server did on the full facts.
    const same = await nina.evaluate(async (d) => {
      const cells = (await window.gatehouse.ask(d.question)).cells;
      const server = d.members.map((m) => d.action_keys.map((k) => m.actions[k]));
      const page = cells.map((r) => r.map((x) => ({ allowed: x.allowed, reasons: x.reasons })));
      return JSON.stringify(server) === JSON.stringify(page);
    }, data);
    assert.ok(same, 'browser and server decisions agree');
    // Every disabled item of her own row says one of the server's reasons.
    const own = data.members.find((m) => m.user === 'nina');
    const messages = Object.values(own.actions).flatMap((d) => d.reasons.map((r) => r.message));
    const menu = await openMenu(nina, 'nina');
    const items = menu.locator('[role=menuitem][aria-disabled=true]');
    const n = await items.count();
    assert.ok(n >= 3, `nina's own row has disabled items (${n})`);
    for (let i = 0; i < n; i++) {
      const why = await items.nth(i).locator('.why').textContent();
      assert.ok(messages.some((m) => why.includes(m)), `"${why}" is one of the server's reasons`);
    }
  });
});

test('a large account\'s Users page pages: 100 members, then "Show more members" page by page, each page decided like the server', async () => {
  await withHost(
    async (host) => {
      const page = await signIn(browser, host, 'olivia@acme.test');
      await page.goto(`${host.url}/#/a/large/users`);
      await page.waitForSelector('tr[data-user="m0001"]');
      const listed = () => page.locator('table.users tr[data-user]').evaluateAll((rows) => rows.map((r) => r.dataset.user));
      assert.equal((await listed()).length, 100, 'the first page holds 100 members');
      assert.equal(await page.getByTestId('paging').textContent(), 'Showing 100 of 250 members');
      await shot(page, 'users-large-first-page');
      const more = page.getByRole('button', { name: 'Show more members' });
      const batches = await page.evaluate(() => window.gatehouse.stats.batchCalls);
      await more.click();
      await page.waitForSelector('tr[data-user="m0200"]');
      assert.equal(await page.getByTestId('paging').textContent(), 'Showing 200 of 250 members');
      assert.equal(await page.evaluate(() => window.gatehouse.stats.batchCalls), batches + 1, 'one batch call per page');
      await more.click();
      await page.waitForSelector('tr[data-user="m0250"]');
      assert.equal(await more.count(), 0, 'no more to show: the control is gone');
      assert.equal(await page.getByTestId('paging').textContent(), 'Showing 250 of 250 members');
      // Focus stays on the paging status, not lost with the removed button.
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'paging');
      const want = Array.from({ length: 250 }, (_, i) => `m${String(i + 1).padStart(4, '0')}`);
      assert.deepEqual(await listed(), want, 'every member once, in id order');
      // Each page's question asks about that page's rows only, and the
      // page's module answers it exactly as the server did.
      const same = await page.evaluate(async () => {
        const out = [];
        for (const after of [null, 'm0100', 'm0200']) {
          const data = await (await fetch(`/v1/accounts/large/members${after ? `?after=${after}` : ''}`)).json();
          const cells = (await window.gatehouse.ask(data.question)).cells;
          const server = data.members.map((m) => data.action_keys.map((k) => m.actions[k]));
          const mine = cells.map((r) => r.map((x) => ({ allowed: x.allowed, reasons: x.reasons })));
          out.push({
            targets: data.question.targets.map((t) => t.membership.user).join() === data.members.map((m) => m.user).join(),
            same: JSON.stringify(server) === JSON.stringify(mine),
          });
        }
        return out;
      });
      assert.deepEqual(same, [1, 2, 3].map(() => ({ targets: true, same: true })));
      // A change to a member of the third page: the page renders again with
      // as many pages as before, the change shown.
      const menu = await openMenu(page, 'm0230');
      await menu.locator('[data-action="Suspend"]').click();
      await page.locator('.notice.ok').waitFor();
      await page.waitForSelector('tr[data-user="m0230"] .status.suspended');
      assert.equal((await listed()).length, 250, 'still every page shown after the change');
      await shot(page, 'users-large-all-pages');
    },
    { args: ['--demo-members', '250'] },
  );
});

test('a page reloads the module when the host announces another one', async () => {
  await withHost(async (host) => {
    const page = await signIn(browser, host, 'ada@acme.test');
    assert.equal(await page.evaluate(() => window.gatehouse.stats.loads), 1);
    const real = await page.evaluate(() => window.gatehouse.loaded().moduleSha256);
    // One members response announces another module, as after a publish.
    await page.route('**/v1/accounts/agency/members', async (route) => {
      const response = await route.fetch();
      await route.fulfill({ response, headers: { ...response.headers(), 'x-gatehouse-module-sha256': 'f'.repeat(64) } });
    }, { times: 1 });
    await page.evaluate(() => { location.hash = '#/a/agency/users?again'; });
    await page.waitForFunction(() => window.gatehouse.stats.loads === 2);
    // The host has no module at that hash: the page asked /health for the
    // live one's URL and loaded it again, checked against the hash in the URL.
    assert.equal(await page.evaluate(() => window.gatehouse.loaded().moduleSha256), real);
    await page.waitForSelector('table.users');

    // A module whose bytes do not hash to what its URL names is refused
    // (here: the real module with a custom section appended, still valid wasm).
    const tampered = await browser.newPage();
    await tampered.route('**/v1/module/*.wasm', async (route) => {
      const body = await (await route.fetch()).body();
      const extra = Buffer.from([0, 5, 4, ...Buffer.from('evil')]);
      await route.fulfill({ status: 200, body: Buffer.concat([body, extra]), headers: { 'content-type': 'application/wasm' } });
    });
    await tampered.goto(`${host.url}/#/sign-in`);
    const problem = tampered.locator('.problem');
    await problem.waitFor();
    assert.match(await problem.textContent(), new RegExp(`is not the ${real} the host announced`));
  });
});

test('the module comes by its hash URL, brotli-compressed and cached for good, compiled while it streams', async () => {
  await withHost(async (host) => {
    let seen;
    const page = await signIn(browser, host, 'ada@acme.test', undefined, {
      before: async (p) => {
        await countStreaming(p);
        seen = watchModules(p);
      },
    });
    const sha = await page.evaluate(() => window.gatehouse.loaded().moduleSha256);
    assert.equal(seen.length, 1, JSON.stringify(seen.map((r) => r.path)));
    const first = seen[0];
    assert.equal(first.path, `/v1/module/${sha}.wasm`);
    assert.equal(first.status, 200);
    assert.equal(first.headers['content-encoding'], 'br');
    assert.equal(first.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(first.headers['content-type'], 'application/wasm');
    assert.ok(await page.evaluate(() => window.streamed >= 1), 'WebAssembly.compileStreaming compiled it');
    // Reloaded, the page gets the module from the browser's cache: nothing
    // on the wire; what the cache holds is the compressed bytes, a fifth.
    await page.reload();
    await page.waitForSelector('table.users');
    await page.waitForFunction(() => window.gatehouse.loaded() !== null);
    assert.equal(seen.length, 2);
    assert.equal(seen[1].path, first.path);
    const entry = await page.evaluate((url) => {
      const e = performance.getEntriesByType('resource').find((x) => new URL(x.name).pathname === url);
      return e && { transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize };
    }, `/v1/module/${sha}.wasm`);
    assert.ok(entry, 'the module is among the page\'s resources');
    assert.equal(entry.transfer, 0, `served from the cache: ${JSON.stringify(entry)}`);
    assert.ok(entry.decoded > 3 * entry.encoded, `compressed: ${JSON.stringify(entry)}`);
    // The page's JS and CSS are compressed too, and cached for good.
    const asset = await page.evaluate(async () => {
      const src = document.querySelector('script[type=module]').getAttribute('src');
      const r = await fetch(src, { cache: 'no-store' });
      return { encoding: r.headers.get('content-encoding'), cache: r.headers.get('cache-control'), vary: r.headers.get('vary') };
    });
    assert.deepEqual(asset, { encoding: 'br', cache: 'public, max-age=31536000, immutable', vary: 'accept-encoding' });

    // A proxy that sends the module as application/octet-stream: compileStreaming
    // refuses it and the page compiles the downloaded bytes instead.
    const other = await browser.newPage();
    await countStreaming(other);
    await other.route('**/v1/module/*.wasm', async (route) => {
      const body = await (await route.fetch()).body();
      await route.fulfill({ status: 200, body, headers: { 'content-type': 'application/octet-stream' } });
    });
    await other.goto(`${host.url}/#/sign-in`);
    await other.waitForSelector('#signin-email');
    await other.waitForFunction(() => window.gatehouse.loaded() !== null);
    assert.equal(await other.evaluate(() => window.gatehouse.loaded().moduleSha256), sha);
    assert.ok(await other.evaluate(() => window.streamed >= 1), 'streaming was tried first');
    await other.close();
  });
});

test('menus work from the keyboard', async () => {
  await withHost(async (host) => {
    const page = await signIn(browser, host, 'ada@acme.test');
    const button = row(page, 'ivan').locator('.menu-button');
    await button.focus();
    await page.keyboard.press('ArrowDown');
    const menu = row(page, 'ivan').locator('[role=menu]');
    assert.equal(await button.getAttribute('aria-expanded'), 'true');
    const first = await page.evaluate(() => document.activeElement?.getAttribute('role'));
    assert.equal(first, 'menuitem', 'ArrowDown opens the menu on its first item');
    await page.keyboard.press('End');
    const last = await page.evaluate(() => document.activeElement?.textContent);
    assert.match(last, /Remove from account/);
    await page.keyboard.press('Escape');
    assert.ok(await menu.isHidden(), 'Escape closes the menu');
    assert.equal(await page.evaluate(() => document.activeElement?.className), 'menu-button', 'focus returns to the button');
  });
});

test('an admin cannot remove an owner: disabled, reason shown', async () => {
  await withHost(async (host) => {
    const page = await signIn(browser, host, 'ada@acme.test');
    const menu = await openMenu(page, 'olivia');
    const remove = menu.locator('[data-action="Remove from account"]');
    assert.equal(await remove.getAttribute('aria-disabled'), 'true');
    const why = await remove.locator('.why').textContent();
    assert.match(why, /owner/i, `the reason names the owner rule: ${why}`);
    await shot(page, 'users-admin-owner-menu');
    // Clicking a disabled item does nothing.
    await remove.click({ force: true });
    assert.equal(await row(page, 'olivia').count(), 1);
  });
});

test('an admin removes a member: the row disappears and the seat count drops', async () => {
  await withHost(async (host) => {
    const page = await signIn(browser, host, 'ada@acme.test');
    const before = await seats(page);
    const menu = await openMenu(page, 'bea');
    await menu.locator('[data-action="Remove from account"]').click();
    await page.locator('dialog button.danger').click();
    await page.locator('.notice.ok').waitFor();
    assert.equal(await row(page, 'bea').count(), 0, 'the row is gone');
    const after = await seats(page);
    assert.equal(after.used, before.used - 1, `seats ${before.used} -> ${after.used}`);
    await shot(page, 'users-admin-removed');
  });
});

test('when the server denies what the page allowed, the page shows its reasons and refreshes', async () => {
  await withHost(async (host) => {
    const ada = await signIn(browser, host, 'ada@acme.test');
    const olivia = await signIn(browser, host, 'olivia@acme.test');
    // ada's page allows removing sam; meanwhile olivia makes sam an owner.
    const menu = await openMenu(ada, 'sam');
    const remove = menu.locator('[data-action="Remove from account"]');
    assert.equal(await remove.getAttribute('aria-disabled'), null);
    const made = await olivia.evaluate(async () => {
      const me = await (await fetch('/v1/me')).json();
      const r = await fetch('/v1/accounts/agency/members/sam/role', { method: 'PUT', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf }, body: JSON.stringify({ role: 'owner' }) });
      return r.status;
    });
    assert.equal(made, 200);
    await remove.click();
    await ada.locator('dialog button.danger').click();
    const notice = ada.locator('.notice.denied');
    await notice.waitFor();
    assert.match(await notice.textContent(), /refused/);
    assert.ok((await notice.locator('.reasons li').count()) >= 1, 'the server reasons are listed');
    await shot(ada, 'users-race-denied');
    // Refreshed: sam is an owner now and ada's menu says why she cannot remove him.
    assert.match(await row(ada, 'sam').locator('td[data-label=Role]').textContent(), /owner/);
    const again = await openMenu(ada, 'sam');
    assert.equal(await again.locator('[data-action="Remove from account"]').getAttribute('aria-disabled'), 'true');
  });
});

test('an owner-removal request is approved by the target in a second browser context', async () => {
  await withHost(async (host) => {
    const olivia = await signIn(browser, host, 'olivia@acme.test');
    // The demo data has olivia's pending request about oscar: a second one is refused with the reason.
    let menu = await openMenu(olivia, 'oscar');
    const ask = menu.locator('[data-action="Request owner removal…"]');
    assert.equal(await ask.getAttribute('aria-disabled'), 'true');
    assert.match(await ask.locator('.why').textContent(), /already pending/);
    // olivia cancels it on the requests page, then asks again from the Users menu.
    await olivia.goto(`${host.url}/#/a/agency/owners`);
    const pending = olivia.locator('tr[data-request]', { hasText: 'pending' }).first();
    await pending.locator('.menu-button').click();
    await pending.locator('[role=menuitem]', { hasText: 'Cancel request' }).click();
    await olivia.locator('.notice.ok').waitFor();
    await olivia.goto(`${host.url}/#/a/agency/users`);
    await olivia.waitForSelector('table.users');
    menu = await openMenu(olivia, 'oscar');
    await menu.locator('[data-action="Request owner removal…"]').click();
    await olivia.check('#drop-admin');
    await shot(olivia, 'owner-removal-dialog');
    await olivia.getByRole('button', { name: 'Send request' }).click();
    await olivia.locator('.notice.ok').waitFor();
    const oscar = await signIn(browser, host, 'oscar@acme.test');
    await oscar.goto(`${host.url}/#/a/agency/owners`);
    const req = oscar.locator('tr[data-request]', { hasText: 'pending' }).first();
    await req.waitFor();
    assert.match(await oscar.locator('tr[data-request]', { hasText: 'cancelled' }).first().textContent(), /cancelled/);
    await shot(oscar, 'owners-pending');
    await req.locator('.menu-button').click();
    await req.locator('[role=menuitem]', { hasText: 'Approve' }).click();
    await oscar.locator('.notice.ok').waitFor();
    assert.equal(await oscar.locator('tr[data-request]', { hasText: 'approved' }).count(), 1);
    await shot(oscar, 'owners-approved');
    await olivia.reload();
    await olivia.waitForSelector('table.users');
    assert.match(await row(olivia, 'oscar').locator('td[data-label=Role]').textContent(), /admin/);
  });
});

test('invite three people at once; only grantable roles are offered', async () => {
  await withHost(async (host) => {
    const ada = await signIn(browser, host, 'ada@acme.test');
    await ada.getByRole('button', { name: 'Invite users' }).click();
    await ada.waitForSelector('dialog form[data-checked="0"]');
    const roles = await ada.locator('.invite-account[data-account=east] select option').allTextContents();
    assert.ok(!roles.includes('owner'), `an admin is not offered owner: ${roles}`);
    assert.ok(roles.includes('basic'));
    await ada.keyboard.press('Escape');

    const page = await signIn(browser, host, 'olivia@acme.test');
    // The agency's seats are all in use (its checkbox says so); Acme East has room.
    await page.getByRole('button', { name: 'Invite users' }).click();
    await page.waitForSelector('dialog form[data-checked="0"]');
    assert.match(await page.locator('.invite-account[data-account=agency] .why').textContent(), /seats/);
    await page.keyboard.press('Escape');
    await page.goto(`${host.url}/#/a/east/users`);
    await page.waitForSelector('h1:has-text("Users of Acme East")');
    const before = await seats(page);
    await page.getByRole('button', { name: 'Invite users' }).click();
    await page.waitForSelector('dialog form[data-checked="0"]');
    const ownerRoles = await page.locator('.invite-account[data-account=east] select option').allTextContents();
    assert.ok(ownerRoles.includes('owner'), `an owner may invite owners: ${ownerRoles}`);
    await page.fill('#invite-emails', 'ann@new.test, ben@new.test\ncat@new.test');
    await page.waitForSelector('dialog form[data-checked="3"]');
    await page.locator('.invite-account[data-account=east] select').selectOption('standard');
    await shot(page, 'invite-dialog');
    await page.getByRole('button', { name: 'Send invitations' }).click();
    const ok = page.locator('.notice.ok');
    await ok.waitFor();
    assert.match(await ok.textContent(), /3 invitations sent/);
    const after = await seats(page);
    assert.equal(after.used, before.used + 3, 'pending invitations hold seats');
    await page.goto(`${host.url}/#/a/east/invitations`);
    await page.waitForSelector('tr[data-invitation]');
    const emails = await page.locator('tr[data-invitation] td[data-label=Email]').allTextContents();
    for (const e of ['ann@new.test', 'ben@new.test', 'cat@new.test']) assert.ok(emails.includes(e), `${e} is listed`);
    await shot(page, 'invitations');
  });
});

test('the Invitations page: the module answers every row; what does not apply is left out of the menu, with R3\'s reason', async () => {
  await withHost(async (host) => {
    const page = await signIn(browser, host, 'olivia@acme.test');
    await page.goto(`${host.url}/#/a/agency/invitations`);
    await page.waitForSelector('tr[data-invitation]');
    const inv = (email) => page.locator('tr[data-invitation]', { has: page.locator('td[data-label=Email]', { hasText: email }) });
    const items = async (email) => {
      await inv(email).locator('.menu-button').click();
      const menu = inv(email).locator('[role=menu]');
      await menu.waitFor();
      const out = {};
      for (const item of await menu.locator('[role=menuitem]').all()) {
        out[await item.getAttribute('data-action')] = (await item.getAttribute('aria-disabled')) === 'true' ? await item.locator('.why').textContent() : 'enabled';
      }
      await page.keyboard.press('Escape');
      return out;
    };
    // Pending: both offered. Expired: visible for resend (the agency is full, R4 says why), revocable.
    assert.deepEqual(await items('new@acme.test'), { Resend: 'enabled', Revoke: 'enabled' });
    const expired = await items('late@acme.test');
    assert.equal(expired.Revoke, 'enabled');
    assert.match(expired.Resend, /seats/);
    // Accepted: nothing applies; no menu, R3's reason instead (no made-up wording).
    const accepted = inv('sam@acme.test');
    assert.equal(await accepted.locator('.menu-button').count(), 0);
    assert.equal(await accepted.locator('td.actions .why').textContent(), 'this invitation was already accepted: manage the member instead');
    await shot(page, 'invitations-statuses');
    // Revoke the pending one through its menu: it stays listed as revoked, with nothing left to do.
    await inv('new@acme.test').locator('.menu-button').click();
    await inv('new@acme.test').locator('[data-action="Revoke"]').click();
    await page.locator('.notice.ok').waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll('tr[data-invitation] .status')].some((s) => s.textContent === 'revoked'));
    assert.equal(await inv('new@acme.test').locator('.status').textContent(), 'revoked');
    assert.equal(await inv('new@acme.test').locator('.menu-button').count(), 0);
    assert.equal(await inv('new@acme.test').locator('td.actions .why').textContent(), 'this invitation was revoked: send a new one');
    // The page's module answers every row exactly as the server did.
    const same = await page.evaluate(async () => {
      const data = await (await fetch('/v1/accounts/agency/invitations')).json();
      const cells = (await window.gatehouse.ask(data.question)).cells;
      const server = data.invitations.map((v) => data.action_keys.map((k) => v.actions[k]));
      const mine = cells.map((r) => r.map((d) => ({ allowed: d.allowed, reasons: d.reasons })));
      return JSON.stringify(server) === JSON.stringify(mine) && server.length === data.invitations.length;
    });
    assert.ok(same, 'browser and server decisions agree on every row');
  });
});

test('bulk removal shows progress to completion with per-account results', async () => {
  await withHost(async (host) => {
    const page = await signIn(browser, host, 'olivia@acme.test');
    await page.goto(`${host.url}/#/a/agency/bulk`);
    await page.waitForSelector('#bulk-user');
    await page.selectOption('#bulk-user', 'bob');
    await page.getByRole('button', { name: 'Remove from every account' }).click();
    await page.waitForFunction(() => /finished/.test(document.getElementById('bulk-status')?.textContent ?? ''));
    const progress = await page.locator('#bulk-progress').evaluate((p) => [p.value, p.max]);
    assert.equal(progress[0], progress[1], `the bar is full: ${progress}`);
    assert.ok(progress[1] >= 2, 'the agency and its sub-accounts were processed');
    const results = await page.locator('#bulk-results li').allTextContents();
    assert.ok(results.some((r) => /agency: removed/.test(r)), results.join('\n'));
    assert.ok(results.some((r) => /east: removed/.test(r)), results.join('\n'));
    await shot(page, 'bulk');
  });
});

test('every page renders; at 360 px nothing scrolls sideways', async () => {
  await withHost(async (host) => {
    const page = await signIn(browser, host, 'olivia@acme.test');
    // Something for the audit log: one allowed change through the menu, one denied through the API.
    const menu = await openMenu(page, 'sam');
    await menu.locator('[data-action="Suspend"]').click();
    await page.locator('.notice.ok').waitFor();
    const denied = await page.evaluate(async () => {
      const me = await (await fetch('/v1/me')).json();
      return (await fetch('/v1/accounts/agency/members/oscar', { method: 'DELETE', headers: { 'x-csrf-token': me.csrf } })).status;
    });
    assert.equal(denied, 403);
    for (const [hash, name, ready] of [
      ['#/a/agency/invitations', 'invitations-empty', 'h1'],
      ['#/a/agency/owners', 'owners', 'h1'],
      ['#/a/agency/audit', 'audit', 'table.audit'],
      ['#/a/agency/audit?decision=denied', 'audit-denied', 'tr.denied'],
      ['#/profile', 'profile', 'tr[data-device]'],
    ]) {
      await page.goto(`${host.url}/${hash}`);
      await page.waitForSelector(ready);
      await shot(page, name);
    }
    const phone = await signIn(browser, host, 'ada@acme.test', { width: 360, height: 740 });
    const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 360, `the Users page is ${wide} px wide at 360`);
    await openMenu(phone, 'olivia');
    const menuRight = await row(phone, 'olivia').locator('[role=menu]').evaluate((m) => m.getBoundingClientRect().right);
    assert.ok(menuRight <= 360, `the open menu fits (${menuRight})`);
    await shot(phone, 'users-360');
    const signin = await browser.newPage();
    await signin.goto(`${host.url}/#/sign-in`);
    await signin.waitForSelector('#signin-email');
    await shot(signin, 'sign-in');
  });
});

test('a sign-in link asks before it signs in, and only in the browser that asked for it', async () => {
  await withHost(async (host) => {
    // The asking browser: the form, then the link from the demo mailbox.
    const asking = await (await browser.newContext()).newPage();
    await asking.goto(`${host.url}/#/sign-in`);
    await asking.fill('#signin-email', 'bea@acme.test');
    await asking.click('button[type=submit]');
    await asking.getByRole('link', { name: 'open the demo mailbox' }).click();
    const link = asking.locator('.mail a').first();
    await link.waitFor();
    const href = await link.getAttribute('href');
    // Another browser opens it: refused, with what to do, and nobody is signed in.
    const other = await (await browser.newContext()).newPage();
    await other.goto(href);
    const problem = other.locator('.problem');
    await problem.waitFor();
    assert.match(await problem.textContent(), /asked for in another browser/);
    await shot(other, 'sign-in-other-browser');
    assert.equal(await other.locator('#confirm-sign-in').count(), 0);
    // The asking browser sees whose link it is and signs in only on confirm.
    await asking.goto(href);
    await asking.waitForSelector('#confirm-sign-in');
    assert.match(await asking.locator('form.card').textContent(), /Sign in as bea@acme\.test in this browser\?/);
    await shot(asking, 'sign-in-confirm');
    assert.equal((await asking.evaluate(async () => (await fetch('/v1/me')).status)), 401, 'opening the link signed nobody in');
    await asking.click('#confirm-sign-in');
    await asking.waitForSelector('table.users');
    // The other browser, even now, is not signed in.
    assert.equal((await other.evaluate(async () => (await fetch('/v1/me')).status)), 401);
  });
});

test('the policy editor: live problems and tables in the page, the impact of a change, a publish a second owner approves and the page reloads', async () => {
  await withHost(async (host) => {
    // Something on record: ada, an admin, suspends bea.
    const ada = await signIn(browser, host, 'ada@acme.test');
    assert.equal(await ada.locator('#policies-link').count(), 0, 'an admin gets no Policies link');
    await (await openMenu(ada, 'bea')).locator('[data-action="Suspend"]').click();
    await ada.locator('.notice.ok').waitFor();
    // The policies decide who may open the editor: an admin is told why.
    await ada.goto(`${host.url}/#/policies`);
    await ada.locator('.problem').waitFor();
    assert.match(await ada.locator('.problem').textContent(), /only owners of Acme Agency may edit or publish the policies/);

    const page = await signIn(browser, host, 'olivia@acme.test');
    await page.click('#policies-link');
    await page.waitForSelector('#tables-summary');
    const summary = await page.locator('#tables-summary').textContent();
    const m = summary.match(/^(\d+) decision tables: (\d+) passed, 0 failed$/);
    assert.ok(m && Number(m[1]) > 300 && m[1] === m[2], `every table passes in the page: ${summary}`);
    await page.waitForSelector('#checks .good');
    assert.match(await page.locator('#checks').textContent(), /^Valid: \d+ policies, \d+ actions/);
    await shot(page, 'policies');

    // A syntax error is pointed at, file:line:col, while typing.
    await page.getByRole('button', { name: /^r16_leave\.cedar/ }).click();
    const leave = await page.inputValue('#policy-source');
    await page.fill('#policy-source', `${leave}\npermit (principal, action, resource) when {`);
    await page.waitForSelector('.problems li');
    const where = await page.locator('.problems li button').first().textContent();
    assert.match(where, /^r16_leave\.cedar:\d+:\d+$/, where);
    await shot(page, 'policies-parse-error');

    // Admins may no longer suspend: the tables fail in the page and the
    // host's impact report names ada's recorded suspension.
    await page.fill('#policy-source', leave);
    await page.getByRole('button', { name: /^r07_suspend\.cedar/ }).click();
    const suspend = await page.inputValue('#policy-source');
    const weakened = suspend.replace('when { principal in resource.account.admins };', 'when { principal in resource.account.owners };');
    assert.notEqual(weakened, suspend, 'the R7.suspend condition is where this test expects it');
    await page.fill('#policy-source', weakened);
    await page.waitForFunction(() => /[1-9]\d* failed$/.test(document.querySelector('#tables-summary')?.textContent ?? ''));
    assert.ok(await page.locator('#publish-button').isDisabled(), 'failing tables cannot be published');
    assert.match(await page.locator('.failures').textContent(), /R7/);
    // The draft was loaded only while the tables ran: the page's module
    // answers under the live policies again.
    const resident = await page.evaluate(async () => JSON.parse((await window.gatehouse.module()).call('{"op":"info"}')).policy_hash);
    assert.equal(resident, await page.evaluate(() => window.gatehouse.loaded().policyHash));
    await page.click('#impact-button');
    await page.waitForSelector('#impact-summary');
    assert.match(await page.locator('#impact-summary').textContent(), /[1-9]\d* allow → deny/);
    const flips = await page.locator('table.impact-flips tbody tr').allTextContents();
    // Each flip by audit id, account, action and policy ids, never by whom.
    assert.ok(flips.some((t) => /^#\d+/.test(t) && t.includes('agency') && t.includes('suspend') && t.includes('R7.suspend')), flips.join('\n'));
    assert.ok(!flips.some((t) => /ada|bea|Admin|Basic|@acme/.test(t)), flips.join('\n'));
    await shot(page, 'policies-impact');

    // A harmless change (a comment) is published for real: the host swaps
    // and the page loads the new module.
    await page.fill('#policy-source', `// Reviewed in the editor.\n${suspend}`);
    await page.waitForFunction(() => / 0 failed$/.test(document.querySelector('#tables-summary')?.textContent ?? ''));
    const before = await page.evaluate(() => window.gatehouse.loaded().policyHash);
    await page.fill('#publish-message', 'note that R7 was reviewed');
    await page.click('#publish-button');
    // A publish waits for a second owner: nothing is live yet.
    await page.waitForSelector('#publish-result .notice.ok', { timeout: 60_000 });
    assert.match(await page.locator('#publish-result .notice.ok').textContent(), /waits for a second owner of agency/);
    assert.equal(await page.evaluate(() => window.gatehouse.loaded().policyHash), before);
    const mine = page.locator('#publish-requests tbody tr').first();
    assert.ok(await mine.locator('button:text("Approve")').isDisabled(), 'the author cannot approve their own publish');
    await shot(page, 'policies-pending');
    // Oscar, the other owner, approves it: the host swaps and his page loads the new module.
    let modules;
    const oscar = await signIn(browser, host, 'oscar@acme.test', undefined, { before: (p) => (modules = watchModules(p)) });
    await oscar.click('#policies-link');
    await oscar.waitForSelector('#publish-requests tbody tr');
    await oscar.locator('#publish-requests tbody tr').first().locator('button:text("Approve")').click();
    await oscar.waitForSelector('#publish-result .notice.ok', { timeout: 60_000 });
    const published = await oscar.locator('#publish-result .notice.ok').textContent();
    assert.match(published, /^Published version 1 \(policy [0-9a-f]{12}\)/);
    await oscar.waitForFunction((old) => window.gatehouse.loaded()?.policyHash !== old, before, { timeout: 30_000 });
    const after = await oscar.evaluate(() => window.gatehouse.loaded().policyHash);
    assert.ok(published.includes(after.slice(0, 12)), `the page decides with the published policies (${after})`);
    // The published module came by its own hash URL, brotli-compressed at publish time.
    const sha = await oscar.evaluate(() => window.gatehouse.loaded().moduleSha256);
    const fetched = modules.filter((r) => r.path === `/v1/module/${sha}.wasm`);
    assert.equal(fetched.length, 1, JSON.stringify(modules.map((r) => r.path)));
    assert.equal(fetched[0].status, 200);
    assert.equal(fetched[0].headers['content-encoding'], 'br');
    assert.equal(fetched[0].headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.ok(!modules.some((r) => r.path === '/v1/module'), 'nothing asked for the unversioned URL');
    await shot(oscar, 'policies-published');
    // The approval is in the audit log, by oscar, under approve_publish.
    await oscar.goto(`${host.url}/#/a/agency/audit?action=approve_publish`);
    await oscar.waitForSelector('table.audit');
    assert.match(await oscar.locator('table.audit tbody').textContent(), /user:oscar.*approve_publish.*allowed/s);
    // At 360 px the editor stacks; nothing scrolls sideways.
    const phone = await signIn(browser, host, 'olivia@acme.test', { width: 360, height: 740 });
    await phone.click('#policies-link');
    await phone.waitForSelector('#checks .good');
    const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 360, `the editor is ${wide} px wide at 360`);
    await shot(phone, 'policies-360');
  });
});

test('the policy editor checks a table exactly as `gatehouse policy test` does: a row with too few cells fails', async () => {
  // Two tables on the acme fixture: one as the module answers it, one whose
  // first row expects one cell where the answer has two. The Rust checker
  // fails the second ("row 0: expected 1 cells, got 2"); so must the page.
  const root = resolve(import.meta.dirname, '../..');
  const tables = mkdtempSync(join(tmpdir(), 'gatehouse-tables-'));
  cpSync(join(root, 'tests/vectors/fixtures'), join(tables, 'fixtures'), { recursive: true });
  mkdirSync(join(tables, 'hand'));
  const permitted = { allowed: true, outcome: 'permitted', reasons: ['R1.view-and-switch'] };
  const base = {
    fixture: 'acme',
    actor: { user: 'bea' },
    batch: { targets: [{ account: 'agency' }, { account: 'east' }], actions: [{ action: 'view_members' }, { action: 'switch_account' }] },
  };
  const cases = [
    { name: 'as the module answers', ...base, expect: { cells: [[permitted, permitted], [permitted, permitted]] } },
    { name: 'a row with too few cells', ...base, expect: { cells: [[permitted], [permitted, permitted]] } },
  ];
  writeFileSync(join(tables, 'hand', 'r01_cells.json'), JSON.stringify({ rule: 'R1', cases }));
  try {
    await withHost(async (host) => {
      const page = await signIn(browser, host, 'olivia@acme.test');
      await page.click('#policies-link');
      await page.waitForSelector('#tables-summary');
      assert.equal(await page.locator('#tables-summary').textContent(), '2 decision tables: 1 passed, 1 failed');
      const failures = await page.locator('.failures li').allTextContents();
      assert.equal(failures.length, 1, failures.join('\n'));
      assert.match(failures[0], /a row with too few cells/);
      assert.match(failures[0], /row 0: expected 1 cells, got 2/);
    }, { tables });
  } finally {
    rmSync(tables, { recursive: true, force: true });
  }
});
