// Loads the one Gatehouse module in Node or a browser.
//
// The policies travel in the module's own `gatehouse.policies` custom
// section: a module cannot read its own sections, so this loader reads it
// with `WebAssembly.Module.customSections` and hands it to `loadPolicies`
// once. The module's sha256 is computed here from the very bytes that were
// compiled, so a page can compare it with the hash its host announces.
import { initSync, loadPolicies, call, evaluate, checkPolicies } from './gatehouse.js';

const SECTION = 'gatehouse.policies';

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Compiles and instantiates `bytes` (the whole dist/gatehouse.wasm) and loads
 * its policies.
 * @param {Uint8Array | ArrayBuffer} bytes
 * @returns {Promise<import('./loader.d.mts').Gatehouse>}
 */
export async function loadGatehouse(bytes) {
  // Hashed off the main thread while the bytes compile and the policies load.
  const sha256 = digest(bytes);
  sha256.catch(() => undefined); // awaited in instantiate; not unhandled if compiling throws first
  return instantiate(new WebAssembly.Module(bytes), sha256);
}

/**
 * The same from a `fetch` response, compiled while it downloads
 * (`WebAssembly.compileStreaming`). That needs `Content-Type:
 * application/wasm`; with another type (a proxy that rewrites it) the bytes
 * are compiled once they are all there. The sha256 is computed from the same
 * bytes, read from a copy of the response.
 * @param {Response} response
 * @returns {Promise<import('./loader.d.mts').Gatehouse>}
 */
export async function loadGatehouseStreaming(response) {
  const bytes = response.clone().arrayBuffer();
  // Hashed off the main thread while the module compiles and loads.
  const sha256 = bytes.then(digest);
  sha256.catch(() => undefined); // awaited in instantiate; not unhandled if compiling throws first
  let module;
  try {
    module = await WebAssembly.compileStreaming(response);
  } catch (e) {
    // A TypeError is the response's (content type, body used), not the
    // module's: a module that does not compile throws a CompileError.
    if (!(e instanceof TypeError)) throw e;
    module = await WebAssembly.compile(await bytes);
  }
  return instantiate(module, sha256);
}

/**
 * The hex sha256 of `bytes`; started before compiling so that it overlaps
 * compilation and the policies' load (WebCrypto hashes off the main thread).
 * @param {Uint8Array | ArrayBuffer} bytes
 * @returns {Promise<string>}
 */
async function digest(bytes) {
  return hex(await globalThis.crypto.subtle.digest('SHA-256', bytes));
}

/**
 * @param {WebAssembly.Module} module
 * @param {Promise<string>} sha256 the sha256 of the bytes `module` was compiled from
 */
async function instantiate(module, sha256) {
  const sections = WebAssembly.Module.customSections(module, SECTION);
  if (sections.length !== 1) {
    throw new Error(`the module has ${sections.length} \`${SECTION}\` sections, expected 1: rebuild it with \`cargo xtask wasm\``);
  }
  initSync({ module });
  const loaded = JSON.parse(loadPolicies(new Uint8Array(sections[0])));
  if (loaded.type !== 'success') {
    throw new Error(`the module's policies did not load: ${JSON.stringify(loaded.errors)}`);
  }
  const live = new Uint8Array(sections[0]);
  const moduleSha256 = await sha256;
  /**
   * Runs `f` with a draft bundle loaded in place of the module's own, then
   * loads the module's own again. `f` must be synchronous: nothing else can
   * run in between, so no other caller ever sees the draft.
   */
  function withPolicies(bundle, f) {
    const draft = JSON.parse(loadPolicies(bundle));
    try {
      return { loaded: draft, result: draft.type === 'success' ? f(call) : undefined };
    } finally {
      const back = JSON.parse(loadPolicies(live));
      if (back.type !== 'success') throw new Error(`the module's own policies did not load again: ${JSON.stringify(back.errors)}`);
    }
  }
  return {
    moduleSha256,
    policyHash: loaded.policy_hash,
    call,
    evaluate,
    check: (bundle) => JSON.parse(checkPolicies(bundle)),
    withPolicies,
  };
}
