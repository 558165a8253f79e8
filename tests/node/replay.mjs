// Replays JSON-lines envelopes through the module in Node.
//   node tests/node/replay.mjs dist/gatehouse.wasm IN.jsonl OUT.jsonl
// Writes one answer line per input line (from `call`, the JSON door), and
// prints the module sha256, the policy hash, and how many answers of the
// object door (`evaluate`) differed from the JSON door.
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { resolve, dirname } from 'node:path';

const [wasmPath, inPath, outPath] = process.argv.slice(2);
if (!wasmPath || !inPath || !outPath) {
  console.error('usage: node tests/node/replay.mjs MODULE.wasm IN.jsonl OUT.jsonl');
  process.exit(2);
}
const { loadGatehouse } = await import(pathToFileURL(resolve(dirname(wasmPath), 'loader.mjs')).href);
const gh = await loadGatehouse(readFileSync(wasmPath));
// Each line is one input, written as a JSON string literal (inputs may hold newlines).
const lines = readFileSync(inPath, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
const out = [];
let objectMismatches = 0;
for (const line of lines) {
  const answer = gh.call(line);
  out.push(answer);
  // The object door must agree with the JSON door on every decision.
  if (line.length < 1_000_000 && answer.startsWith('{"type":"success"')) {
    const viaObjects = JSON.stringify(gh.evaluate(JSON.parse(line)));
    if (viaObjects !== answer) objectMismatches += 1;
  }
}
writeFileSync(outPath, out.join('\n') + '\n');
console.log(JSON.stringify({ module_sha256: gh.moduleSha256, policy_hash: gh.policyHash, answers: out.length, object_mismatches: objectMismatches }));
