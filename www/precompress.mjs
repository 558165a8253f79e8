// Writes a `.br` (brotli, best quality) and a `.gz` (gzip -9) beside every
// JS, CSS and HTML file of dist/; `gatehouse serve` sends the one the
// browser accepts. Run by `npm run build` (so by `cargo xtask www`) after Vite.
//
// Why once here and not per request: the pages' JS goes out at 14.5 KB under
// brotli 11 where on-the-fly brotli 4 gives 16.5 KB (47.9 KB raw), and no
// request pays for compressing it.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dist = join(import.meta.dirname, 'dist');
let raw = 0;
let br = 0;
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !/\.(js|css|html)$/.test(entry.name)) continue;
  const path = join(entry.parentPath, entry.name);
  const bytes = readFileSync(path);
  const brotli = brotliCompressSync(bytes, {
    params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
  });
  writeFileSync(`${path}.br`, brotli);
  writeFileSync(`${path}.gz`, gzipSync(bytes, { level: 9 }));
  raw += bytes.length;
  br += brotli.length;
}
console.log(`precompressed www/dist: ${raw} bytes of JS, CSS and HTML, ${br} under brotli (.br and .gz beside each)`);
