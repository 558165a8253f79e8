// The page's copy of the one Gatehouse module.
//
// Why here: menus are pre-checked by the very bytes the host enforces with.
// The page downloads the module the host announces on every response
// (`x-gatehouse-module-sha256`; before any response, `/health`'s
// `module_url`) from its hash URL, `/v1/module/<sha256>.wasm` — cached by
// the browser for good, so each module crosses the wire once,
// brotli-compressed —, compiles it while it streams in, checks the bytes'
// sha256 against the one the URL names, and loads the new module when the
// host starts announcing another (a published policy). The server stays the enforcer: a
// pre-check only decides what the page offers, never what happens.
import { loadGatehouseStreaming, type Gatehouse } from '../../dist/loader.mjs';
import type { Answer, BatchDecision } from './gen/module';

/** A batch question as the host hands it out (`question` of a read). */
export type Question = { op: 'batch' } & Record<string, unknown>;

let current: Gatehouse | null = null;
let loading: Promise<Gatehouse> | null = null;
/** The module sha256 the host announced last. */
let announced: string | null = null;
const listeners: Array<() => void> = [];

/** What the page exposes for its tests and benchmark (`window.gatehouse`). */
export const stats = { batchCalls: 0, loads: 0, lastBatchMs: 0 };

const offline = (status: number) => new Error(`the module download failed (${status}): is the host running?`);
const hashUrl = (sha256: string) => `/v1/module/${sha256}.wasm`;

/** The URL of the module the host serves now, as `/health` names it. */
async function liveUrl(): Promise<string> {
  const health = await fetch('/health', { cache: 'no-store' });
  if (!health.ok) throw offline(health.status);
  const { module_url: url } = (await health.json()) as { module_url?: string };
  if (!url) throw new Error('the host names no module URL in /health: is it an older host?');
  return url;
}

async function download(): Promise<Gatehouse> {
  // The hash the host announced last (on any API response) names the URL;
  // with none yet, or one the host no longer has, `/health` names it.
  let url = announced ? hashUrl(announced) : await liveUrl();
  let response = await fetch(url);
  if (response.status === 404 && announced) {
    url = await liveUrl();
    response = await fetch(url);
  }
  if (!response.ok) throw offline(response.status);
  const expected = /\/v1\/module\/([0-9a-f]{64})\.wasm$/.exec(url)?.[1];
  const gh = await loadGatehouseStreaming(response);
  if (gh.moduleSha256 !== expected) {
    throw new Error(`the downloaded module's sha256 ${gh.moduleSha256} is not the ${expected} the host announced: reload the page`);
  }
  announced = gh.moduleSha256;
  stats.loads += 1;
  return gh;
}

/** The loaded module, downloading it the first time. */
export function module(): Promise<Gatehouse> {
  if (current) return Promise.resolve(current);
  if (!loading) {
    loading = download().then(
      (gh) => {
        current = gh;
        loading = null;
        return gh;
      },
      (e: unknown) => {
        loading = null;
        throw e;
      },
    );
  }
  return loading;
}

/** The loaded module's hashes, if loaded. */
export function loaded(): { moduleSha256: string; policyHash: string } | null {
  return current ? { moduleSha256: current.moduleSha256, policyHash: current.policyHash } : null;
}

/** Calls `f` after the module was replaced by a newer one. */
export function onReload(f: () => void): void {
  listeners.push(f);
}

/**
 * Notes the module hash a host response announced; when it differs from the
 * loaded one, the new module is downloaded and listeners re-render.
 */
export function announce(sha256: string | null): void {
  if (!sha256 || sha256 === announced || loading) return;
  announced = sha256;
  if (current && current.moduleSha256 !== sha256) {
    current = null;
    void module().then(() => listeners.forEach((f) => f()));
  }
}

/**
 * Asks the module one batch question: every (target, action) cell at once.
 * One call per render of a table.
 */
export async function ask(question: Question): Promise<BatchDecision> {
  const gh = await module();
  const started = performance.now();
  const answer = gh.evaluate(question) as Answer;
  stats.lastBatchMs = performance.now() - started;
  stats.batchCalls += 1;
  if (answer.type !== 'success' || !answer.batch) {
    const why = answer.type === 'failure' ? answer.errors.map((e) => e.message).join('; ') : 'no batch in the answer';
    throw new Error(`the module could not answer: ${why}`);
  }
  return answer.batch;
}
