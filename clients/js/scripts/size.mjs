// Minified + gzipped size of what a page loads: the SDK entry (index.js with everything it
// imports) and the SharedWorker (worker.js). esbuild bundles and minifies; zlib gzips (-9).
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

for (const entry of ["src/index.ts", "src/worker.ts", "src/sw.ts"]) {
  const result = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false });
  const code = result.outputFiles[0].contents;
  const gzipped = gzipSync(code, { level: 9 }).length;
  console.log(`${entry}: ${code.length} B minified, ${gzipped} B minified+gzipped`);
}
