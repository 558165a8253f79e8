// Times the module inside a Chromium page:
//   node tests/browser/bench.mjs MODULE.wasm SINGLES.jsonl BATCH.json [LARGE.json]
// BATCH.json is one `batch` envelope (targets x actions); SINGLES.jsonl holds
// the same questions as `authorize` envelopes, one per line, target-major.
// Timed in the page with performance.now(), best of several rounds after
// warm-up. Prints {"batch_ms", "singles_ms", "single_us", "ratio", "cells",
// "first_call_ms", ...}; ratio = one batch / all the single calls.
// LARGE.json, another batch (a large account's Users page), is timed as
// JSON text (`call`) and as the objects the pages pass (`evaluate`):
// {"large_batch_ms", "large_evaluate_ms", "large_cells", "large_allowed",
// "large_bytes"} (the answer's cells, allowed cells and UTF-8 bytes, for
// the caller to compare with the native answer).
import { readFileSync } from 'node:fs';
import { openGatehouse } from './chromium.mjs';

const [wasmPath, singlesPath, batchPath, largePath] = process.argv.slice(2);
if (!wasmPath || !singlesPath || !batchPath) {
  console.error('usage: node tests/browser/bench.mjs MODULE.wasm SINGLES.jsonl BATCH.json [LARGE.json]');
  process.exit(2);
}
const singles = readFileSync(singlesPath, 'utf8').split('\n').filter((l) => l.length > 0);
const batch = readFileSync(batchPath, 'utf8');
const large = largePath ? readFileSync(largePath, 'utf8') : null;

const { page, version, close } = await openGatehouse(wasmPath);
let result;
try {
  result = await page.evaluate(
    ({ singles, batch, large }) => {
      const gh = globalThis.gh;
      const t0 = performance.now();
      const first = gh.call(singles[0]);
      const firstCallMs = globalThis.loadMs + (performance.now() - t0);

      // The batch must answer exactly what the single calls answer.
      const batchAnswer = JSON.parse(gh.call(batch));
      if (batchAnswer.type !== 'success') throw new Error(`batch: ${JSON.stringify(batchAnswer)}`);
      const cells = batchAnswer.batch.cells.flat();
      if (cells.length !== singles.length) {
        throw new Error(`${cells.length} batch cells for ${singles.length} single questions`);
      }
      let disagree = 0;
      singles.forEach((s, i) => {
        const answer = JSON.parse(i === 0 ? first : gh.call(s));
        if (answer.type !== 'success') throw new Error(`single ${i}: ${JSON.stringify(answer)}`);
        if (JSON.stringify(answer.decision) !== JSON.stringify(cells[i])) disagree += 1;
      });

      // Best of `rounds` rounds of `iters` runs of f, in ms per run, after warm-up.
      const best = (rounds, iters, f) => {
        for (let i = 0; i < Math.min(iters, 3); i++) f();
        let bestMs = Infinity;
        for (let r = 0; r < rounds; r++) {
          const start = performance.now();
          for (let i = 0; i < iters; i++) f();
          bestMs = Math.min(bestMs, (performance.now() - start) / iters);
        }
        return bestMs;
      };
      const batchMs = best(7, 10, () => gh.call(batch));
      const singlesMs = best(5, 1, () => {
        for (const s of singles) gh.call(s);
      });
      let largeFigures = {};
      if (large !== null) {
        const answer = gh.call(large);
        const parsed = JSON.parse(answer);
        if (parsed.type !== 'success') throw new Error(`large batch: ${answer.slice(0, 500)}`);
        const cells = parsed.batch.cells.flat();
        const envelope = JSON.parse(large);
        largeFigures = {
          large_batch_ms: best(5, 3, () => gh.call(large)),
          large_evaluate_ms: best(5, 3, () => gh.evaluate(envelope)),
          large_cells: cells.length,
          large_allowed: cells.filter((c) => c.allowed).length,
          large_bytes: new TextEncoder().encode(answer).length,
        };
      }
      return {
        ...largeFigures,
        batch_ms: batchMs,
        singles_ms: singlesMs,
        single_us: (singlesMs * 1000) / singles.length,
        ratio: batchMs / singlesMs,
        cells: cells.length,
        first_call_ms: firstCallMs,
        fetch_ms: globalThis.fetchMs,
        batch_disagrees_with_singles: disagree,
        cross_origin_isolated: globalThis.crossOriginIsolated,
      };
    },
    { singles, batch, large },
  );
} finally {
  await close();
}
console.log(JSON.stringify({ ...result, chromium: version }));
