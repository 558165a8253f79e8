// What tests/browser/replay.mjs and bench.mjs share: a static server on
// 127.0.0.1 for the module's directory (dist/) and one in-memory page, and
// Debian's Chromium driven by playwright-core (from www/node_modules; a test
// tool's own browser download fails on this network).
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const CHROMIUM = '/usr/bin/chromium';

const here = dirname(fileURLToPath(import.meta.url));
const playwrightPath = resolve(here, '../../www/node_modules/playwright-core/index.mjs');

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>gatehouse (browser tests)</title></head>
<body>gatehouse (browser tests)</body></html>
`;

/**
 * Serves the module at `/gatehouse.wasm`, the glue files next to it
 * (`/gatehouse.js`, `/loader.mjs`) and the page at `/`; nothing else.
 * Cross-origin isolated (COOP + COEP), so `performance.now()` is precise to
 * a few microseconds rather than 100.
 */
function serve(wasmPath) {
  const dir = dirname(resolve(wasmPath));
  const files = new Map([
    ['/', { body: Buffer.from(PAGE), type: 'text/html; charset=utf-8' }],
    ['/gatehouse.wasm', { path: resolve(wasmPath), type: 'application/wasm' }],
    ['/gatehouse.js', { path: resolve(dir, 'gatehouse.js'), type: 'text/javascript; charset=utf-8' }],
    ['/loader.mjs', { path: resolve(dir, 'loader.mjs'), type: 'text/javascript; charset=utf-8' }],
  ]);
  const server = createServer((req, res) => {
    const file = files.get(new URL(req.url, 'http://localhost').pathname);
    const headers = {
      'cache-control': 'no-store',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    };
    if (req.method !== 'GET' || !file) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    let body;
    try {
      body = file.body ?? readFileSync(file.path);
    } catch (e) {
      res.writeHead(404, headers).end(`${basename(file.path)}: ${e.message}`);
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': file.type, 'content-length': body.length }).end(body);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok(server));
  });
}

/**
 * Serves `wasmPath`'s directory, launches Chromium, opens the page and loads
 * the module in it as `globalThis.gh` (the page computes its sha256), with
 * `globalThis.fetchMs` and `globalThis.loadMs` (compile + instantiate +
 * policies) timed in the page.
 * Returns {page, version, url, close}; `close` ends browser and server.
 */
export async function openGatehouse(wasmPath) {
  let chromium;
  try {
    ({ chromium } = await import(pathToFileURL(playwrightPath).href));
  } catch (e) {
    throw new Error(`playwright-core is missing (${e.message}): run \`npm ci --prefix www\``);
  }
  const server = await serve(wasmPath);
  const url = `http://127.0.0.1:${server.address().port}/`;
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') console.error(`page console: ${m.text()}`);
    });
    await page.goto(url);
    await page.evaluate(async () => {
      const { loadGatehouse } = await import('/loader.mjs');
      const fetched = performance.now();
      const bytes = await (await fetch('/gatehouse.wasm')).arrayBuffer();
      const loading = performance.now();
      globalThis.gh = await loadGatehouse(bytes);
      globalThis.fetchMs = loading - fetched;
      globalThis.loadMs = performance.now() - loading;
    });
    const close = async () => {
      await browser.close();
      await new Promise((ok) => server.close(ok));
    };
    return { page, version: browser.version(), url, close };
  } catch (e) {
    await browser?.close().catch(() => {});
    server.close();
    throw e;
  }
}
