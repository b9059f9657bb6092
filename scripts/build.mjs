#!/usr/bin/env node
// Bundles every runnable part with esbuild. Type checking is separate (`npm run typecheck`).
// Native modules stay external and are loaded from node_modules at run time.
import { build } from "esbuild";
import { isBuiltin } from "node:module";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// ESM bundles of CJS dependencies (ws, yaml...) need a real `require`. Created on first use: every
// chunk gets this banner, and createRequire (module paths for the chunk's directory) costs a
// little each time, which added up over a command's dozen chunks.
const requireShim =
  'let __bhattiRequire; const require = (id) => (__bhattiRequire ??= process.getBuiltinModule("node:module").createRequire(import.meta.url))(id);';

// Built-in modules are not ESM-imported: an ESM import of a built-in makes Node evaluate every
// export of it, getters included (node:fs loads fs/promises and readline, node:http loads undici,
// node:util the diff and colors code...), and loads it even when nothing of it runs (commander's
// child_process, for a command that spawns nothing). That was most of `bhatti version`'s time.
// Instead each built-in is a CJS stub whose exports load the module on first use, through
// process.getBuiltinModule(). Modules that are themselves functions (events, stream...) and
// node:process (the global) are passed through as they are.
const builtinStub = (id) => {
  const mod = process.getBuiltinModule(id);
  const get = `process.getBuiltinModule(${JSON.stringify(id)})`;
  if (typeof mod === "function" || id === "process" || id === "node:process")
    return `module.exports = ${get};`;
  const keys = JSON.stringify(Object.getOwnPropertyNames(mod).filter((k) => k !== "default"));
  return `let m;
const load = () => (m ??= ${get});
for (const k of ${keys}) {
  Object.defineProperty(exports, k, { enumerable: true, get: () => load()[k], set: (v) => { load()[k] = v; } });
}`;
};
const lazyBuiltins = {
  name: "lazy-builtins",
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/]+$/ }, (args) =>
      isBuiltin(args.path) ? { path: args.path, namespace: "node-builtin" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "node-builtin" }, (args) => ({
      contents: builtinStub(args.path),
      loader: "js",
    }));
  },
};

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
  plugins: [lazyBuiltins],
};

const entries = [
  { in: "services/store/src/main.ts", out: "services/store/dist/main.js" },
  { in: "services/network/src/main.ts", out: "services/network/dist/main.js" },
  { in: "services/vmm/src/main.ts", out: "services/vmm/dist/main.js" },
  { in: "services/thermal/src/main.ts", out: "services/thermal/dist/main.js" },
  { in: "gateway/src/main.ts", out: "gateway/dist/main.js", optional: true },
  { in: "agent/src/agent.ts", out: "agent/dist/agent.js", optional: true },
];

import { existsSync, rmSync } from "node:fs";

await Promise.all(
  entries
    .filter((e) => !e.optional || existsSync(join(root, e.in)))
    .map((e) => build({ ...common, entryPoints: [e.in], outfile: e.out })),
);

// The agent's resident spawner beside the standalone bundle (agent/dist/spawner): the agent
// finds it next to itself.
if (existsSync(join(root, "agent/scripts/build-spawner.mjs"))) {
  const { buildSpawner } = await import("../agent/scripts/build-spawner.mjs");
  buildSpawner(join(root, "agent/dist/spawner"));
}

// The share page's terminal (browser code): xterm.js and its CSS bundled here, served by the
// gateway from gateway/dist/share-page/ (no CDN).
if (existsSync(join(root, "gateway/share-page/share-page.ts"))) {
  await build({
    entryPoints: ["gateway/share-page/share-page.ts", "gateway/share-page/share-page.css"],
    outdir: "gateway/dist/share-page",
    bundle: true,
    minify: true,
    platform: "browser",
    format: "iife",
    target: "chrome120",
    logLevel: "warning",
    absWorkingDir: root,
  });
}

// The CLI: a launcher (bhatti.mjs, one file, no chunks to resolve) that answers `bhatti version`
// itself and otherwise turns on the compile cache and imports the command line. `list` and `exec`,
// the commands run most, are one file each (bhatti-list.mjs, bhatti-exec.mjs: everything they run,
// nothing else). Every other command goes through bhatti-main.mjs, split so each command's code
// (the Connect client, one service's generated descriptors, yaml...) is imported only when it runs.
if (existsSync(join(root, "cli/src/bhatti.ts"))) {
  // Chunk names carry content hashes: without this, every build would leave the old ones behind.
  rmSync(join(root, "cli/dist"), { recursive: true, force: true });
  const launcherImports = {
    "./bhatti.js": "./bhatti-main.mjs",
    "./bhatti-list.js": "./bhatti-list.mjs",
    "./bhatti-exec.js": "./bhatti-exec.mjs",
  };
  // The hot bundles' error path (a failed call becomes a ConnectError, then a message) needs
  // @connectrpc/connect, most of @connectrpc and @bufbuild: it stays in files of its own, loaded
  // only when a call fails. One copy of Connect (connect.mjs) for both, so ConnectError is one class.
  const errorPathStaysExternal = {
    name: "error-path-stays-external",
    setup(b) {
      b.onResolve({ filter: /^\.\/gateway-errors\.js$/ }, () => ({
        path: "./gateway-errors.mjs",
        external: true,
      }));
      b.onResolve({ filter: /^@connectrpc\/connect$/ }, () => ({ path: "./connect.mjs", external: true }));
    },
  };
  await Promise.all([
    build({
      ...common,
      entryPoints: { "bhatti-main": "cli/src/bhatti.ts" },
      outdir: "cli/dist",
      splitting: true,
      outExtension: { ".js": ".mjs" },
    }),
    ...["list", "exec"].map((command) =>
      build({
        ...common,
        entryPoints: [`cli/src/bhatti-${command}.ts`],
        outfile: `cli/dist/bhatti-${command}.mjs`,
        plugins: [lazyBuiltins, errorPathStaysExternal],
      }),
    ),
    build({
      ...common,
      entryPoints: ["cli/src/gateway-errors.ts"],
      outfile: "cli/dist/gateway-errors.mjs",
      plugins: [lazyBuiltins, errorPathStaysExternal],
    }),
    build({
      ...common,
      stdin: { contents: 'export * from "@connectrpc/connect";', resolveDir: root, loader: "js" },
      outfile: "cli/dist/connect.mjs",
    }),
    build({
      ...common,
      entryPoints: ["cli/src/bhatti-launcher.ts"],
      outfile: "cli/dist/bhatti.mjs",
      banner: { js: "#!/usr/bin/env node" },
      plugins: [
        lazyBuiltins,
        {
          name: "command-lines-stay-external",
          setup(b) {
            b.onResolve({ filter: /^\.\/bhatti(-list|-exec)?\.js$/ }, (args) => ({
              path: launcherImports[args.path],
              external: true,
            }));
          },
        },
      ],
    }),
  ]);
}
