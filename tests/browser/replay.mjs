// Replays JSON-lines envelopes through the module inside a Chromium page.
//   node tests/browser/replay.mjs dist/gatehouse.wasm IN.jsonl OUT.jsonl
// The same contract as tests/node/replay.mjs: one answer line per input line
// (from `call`, the JSON door), and a summary with the module sha256 (computed
// in the page), the policy hash, how many answers of the object door
// (`evaluate`) differed from the JSON door, and the Chromium version.
import { readFileSync, writeFileSync } from 'node:fs';
import { openGatehouse } from './chromium.mjs';

// Inputs travel to the page in chunks of at most this many characters (one
// larger input travels alone): the hostile vectors are tens of megabytes.
const CHUNK_CHARS = 4 * 1024 * 1024;

const [wasmPath, inPath, outPath] = process.argv.slice(2);
if (!wasmPath || !inPath || !outPath) {
  console.error('usage: node tests/browser/replay.mjs MODULE.wasm IN.jsonl OUT.jsonl');
  process.exit(2);
}
// Each line is one input, written as a JSON string literal (inputs may hold newlines).
const lines = readFileSync(inPath, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
const chunks = [];
let chunk = [];
let size = 0;
for (const line of lines) {
  if (chunk.length > 0 && size + line.length > CHUNK_CHARS) {
    chunks.push(chunk);
    chunk = [];
    size = 0;
  }
  chunk.push(line);
  size += line.length;
}
if (chunk.length > 0) chunks.push(chunk);

const { page, version, close } = await openGatehouse(wasmPath);
const out = [];
let objectMismatches = 0;
let summary;
try {
  for (const inputs of chunks) {
    const got = await page.evaluate((inputs) => {
      const answers = [];
      let mismatches = 0;
      for (const line of inputs) {
        const answer = globalThis.gh.call(line);
        answers.push(answer);
        // The object door must agree with the JSON door on every decision.
        if (line.length < 1_000_000 && answer.startsWith('{"type":"success"')) {
          const viaObjects = JSON.stringify(globalThis.gh.evaluate(JSON.parse(line)));
          if (viaObjects !== answer) mismatches += 1;
        }
      }
      return { answers, mismatches };
    }, inputs);
    out.push(...got.answers);
    objectMismatches += got.mismatches;
  }
  summary = await page.evaluate(() => ({
    module_sha256: globalThis.gh.moduleSha256,
    policy_hash: globalThis.gh.policyHash,
    user_agent: navigator.userAgent,
  }));
} finally {
  await close();
}
writeFileSync(outPath, out.join('\n') + '\n');
console.log(
  JSON.stringify({
    module_sha256: summary.module_sha256,
    policy_hash: summary.policy_hash,
    answers: out.length,
    object_mismatches: objectMismatches,
    chromium: version,
    chunks: chunks.length,
    user_agent: summary.user_agent,
  }),
);
