// Loads the one Gatehouse module in Node or a browser.
//
// The policies travel in the module's own `gatehouse.policies` custom
// section: a module cannot read its own sections, so this loader reads it
// with `WebAssembly.Module.customSections` and hands it to `loadPolicies`
// once. The module's sha256 is computed here from the very bytes that were
// compiled, so a page can compare it with the hash its host announces.
import { initSync, loadPolicies, call, evaluate } from './gatehouse.js';

const SECTION = 'gatehouse.policies';

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Compiles and instantiates `bytes` (the whole dist/gatehouse.wasm) and loads
 * its policies.
 * @param {Uint8Array | ArrayBuffer} bytes
 * @returns {Promise<{moduleSha256: string, policyHash: string, call: (json: string) => string, evaluate: (envelope: object) => object}>}
 */
export async function loadGatehouse(bytes) {
  const module = new WebAssembly.Module(bytes);
  const sections = WebAssembly.Module.customSections(module, SECTION);
  if (sections.length !== 1) {
    throw new Error(`the module has ${sections.length} \`${SECTION}\` sections, expected 1: rebuild it with \`cargo xtask wasm\``);
  }
  initSync({ module });
  const loaded = JSON.parse(loadPolicies(new Uint8Array(sections[0])));
  if (loaded.type !== 'success') {
    throw new Error(`the module's policies did not load: ${JSON.stringify(loaded.errors)}`);
  }
  const moduleSha256 = hex(await globalThis.crypto.subtle.digest('SHA-256', bytes));
  return { moduleSha256, policyHash: loaded.policy_hash, call, evaluate };
}
