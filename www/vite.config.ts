import { defineConfig } from 'vite';

// The pages are served by `gatehouse serve` from www/dist; the module is not
// bundled: the page downloads the host's module by its hash URL.
export default defineConfig({
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 200 },
  server: { fs: { allow: ['..'] } },
});
