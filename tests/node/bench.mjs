// Times the module in Node: node tests/node/bench.mjs MODULE.wasm SINGLE.json BATCH.json [LARGE.json]
// Prints {"single_us", "batch_us", "first_call_ms"}: best of five rounds, after
// warm-up; with LARGE.json (another batch) also {"large_batch_us"}.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { resolve, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';

const [wasmPath, singlePath, batchPath, largePath] = process.argv.slice(2);
const { loadGatehouse } = await import(pathToFileURL(resolve(dirname(wasmPath), 'loader.mjs')).href);
const single = readFileSync(singlePath, 'utf8');
const batch = readFileSync(batchPath, 'utf8');
const t0 = performance.now();
const gh = await loadGatehouse(readFileSync(wasmPath));
const first = gh.call(single);
const firstCallMs = performance.now() - t0;
if (!first.startsWith('{"type":"success"')) throw new Error(first);

function best(rounds, iters, f) {
  for (let i = 0; i < Math.min(iters, 20); i++) f();
  let bestUs = Infinity;
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    for (let i = 0; i < iters; i++) f();
    bestUs = Math.min(bestUs, ((performance.now() - start) * 1000) / iters);
  }
  return bestUs;
}
const singleUs = best(5, 300, () => gh.call(single));
const batchUs = best(5, 10, () => gh.call(batch));
const large = largePath ? readFileSync(largePath, 'utf8') : null;
const largeBatchUs = large === null ? null : best(5, 3, () => gh.call(large));
console.log(JSON.stringify({ single_us: singleUs, batch_us: batchUs, first_call_ms: firstCallMs, large_batch_us: largeBatchUs }));
