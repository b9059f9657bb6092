#!/usr/bin/env node
// Bundles every runnable part with esbuild. Type checking is separate (`npm run typecheck`).
// Native modules stay external and are loaded from node_modules at run time.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// ESM bundles of CJS dependencies (commander, ws...) need a real `require`.
const requireShim =
  'import { createRequire as __bhattiCreateRequire } from "node:module"; const require = __bhattiCreateRequire(import.meta.url);';

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node24",
  conditions: ["source"],
  external: ["better-sqlite3", "node-pty"],
  banner: { js: requireShim },
  sourcemap: "linked",
  logLevel: "warning",
  absWorkingDir: root,
};

const entries = [
  { in: "services/store/src/main.ts", out: "services/store/dist/main.js" },
  { in: "services/network/src/main.ts", out: "services/network/dist/main.js" },
  { in: "services/vmm/src/main.ts", out: "services/vmm/dist/main.js" },
  { in: "services/thermal/src/main.ts", out: "services/thermal/dist/main.js" },
  { in: "gateway/src/main.ts", out: "gateway/dist/main.js", optional: true },
  { in: "agent/src/agent.ts", out: "agent/dist/agent.js", optional: true },
];

import { existsSync } from "node:fs";

await Promise.all(
  entries
    .filter((e) => !e.optional || existsSync(join(root, e.in)))
    .map((e) => build({ ...common, entryPoints: [e.in], outfile: e.out })),
);

// The CLI is split so that `bhatti version` and `--help` load only commander; each
// command's heavier code (Connect, generated descriptors) is imported lazily.
if (existsSync(join(root, "cli/src/bhatti.ts"))) {
  await build({
    ...common,
    entryPoints: { bhatti: "cli/src/bhatti-launcher.ts" },
    outdir: "cli/dist",
    splitting: true,
    outExtension: { ".js": ".mjs" },
    banner: { js: `#!/usr/bin/env node\n${requireShim}` },
  });
}
