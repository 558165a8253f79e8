// The end-to-end harness: a real `gatehouse serve --demo` on loopback with
// its own SQLite file, and Debian's Chromium driven by playwright-core.
//
// Env: GATEHOUSE_BIN (the built host), GATEHOUSE_MODULE (dist/gatehouse.wasm),
// GATEHOUSE_WWW (www/dist), SCREENSHOTS (where pages are captured).
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '../..');
const env = (name, fallback) => process.env[name] ?? fallback;
export const SHOTS = env('SCREENSHOTS', join(root, 'target/screenshots'));
mkdirSync(SHOTS, { recursive: true });

/**
 * Starts a host with fresh demo data; resolves to {url, stop}. `tables`:
 * the decision tables the policy editor runs (default: tests/vectors);
 * `args`: more `serve` flags (e.g. `--demo-members 250`). The browser tests
 * sign the same demo users in many times a minute from one address, so the
 * abuse limits are off (host/tests/limits.rs tests them).
 */
export async function startHost({ tables = join(root, 'tests/vectors'), args = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-e2e-'));
  const child = spawn(
    env('GATEHOUSE_BIN', join(root, 'target/debug/gatehouse')),
    ['serve', '--demo', '--listen', '127.0.0.1:0', '--db', join(dir, 'e2e.db'), '--module', env('GATEHOUSE_MODULE', join(root, 'dist/gatehouse.wasm')), '--www', env('GATEHOUSE_WWW', join(root, 'www/dist')), '--policies', join(root, 'policies'), '--tables', tables, '--rate-limits', 'off', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the host did not start in 60 s:\n${log}`)), 60_000);
    const read = (chunk) => {
      log += chunk;
      const m = log.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => fail(new Error(`the host exited (${code}):\n${log}`)));
  });
  return {
    url,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Launches Debian's Chromium (never a downloaded one). */
export function launch() {
  return chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Signs in through the page as a user would: the sign-in form, then the
 * link from the demo mailbox. Returns the page on the Users page.
 * `before(page)` runs before the first navigation (to watch requests).
 */
export async function signIn(browser, host, email, viewport = { width: 1280, height: 800 }, { before } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  await before?.(page);
  page.on('pageerror', (e) => console.error(`[page error] ${email}: ${e.message}`));
  await page.goto(`${host.url}/#/sign-in`);
  await page.fill('#signin-email', email);
  await page.click('button[type=submit]');
  await page.getByRole('link', { name: 'open the demo mailbox' }).click();
  const link = page.locator('.mail a').first();
  await link.waitFor();
  await page.goto(await link.getAttribute('href'));
  await page.click('#confirm-sign-in');
  await page.waitForSelector('table.users');
  return page;
}

/** Captures the page into SCREENSHOTS. */
export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** The row of a member in the Users table. */
export function row(page, user) {
  return page.locator(`tr[data-user="${user}"]`);
}

/** Opens a row's ⋮ menu and returns the menu locator. */
export async function openMenu(page, user) {
  await row(page, user).locator('.menu-button').click();
  const menu = row(page, user).locator('[role=menu]');
  await menu.waitFor();
  return menu;
}

/** Counts `WebAssembly.compileStreaming` calls in `page` (`window.streamed`). */
export async function countStreaming(page) {
  await page.addInitScript(() => {
    const compile = WebAssembly.compileStreaming;
    window.streamed = 0;
    WebAssembly.compileStreaming = (...args) => {
      window.streamed += 1;
      return compile.apply(WebAssembly, args);
    };
  });
}

/** Records every response for a module URL of `page`: {path, status, headers}. */
export function watchModules(page) {
  const seen = [];
  page.on('response', async (response) => {
    const path = new URL(response.url()).pathname;
    if (path.startsWith('/v1/module')) seen.push({ path, status: response.status(), headers: await response.allHeaders() });
  });
  return seen;
}
