#!/usr/bin/env node
// Assembles the read-only agent package mounted at /.bhatti in every sandbox:
//
//   tini-static                      PID 1 (Debian package `tini`)
//   node                             this Node binary (process.execPath)
//   lib/ld-linux-x86-64.so.2         glibc's dynamic loader, plus every library node and
//   lib/*.so*                        pty.node link against (so images need no glibc)
//   agent.mjs                        the esbuild bundle of agent/src/agent.ts
//   sudo.mjs, bin/sudo               the sudo shim (build-sudo-shim.mjs), mounted over /usr/bin/sudo
//   spawner                          the agent's resident process starter (static, build-spawner.mjs)
//   node_modules/node-pty/           lib/, build/Release/pty.node, package.json
//   manifest.json                    versions and sha256 of agent.mjs (freshness stamp)
//
// The engine starts it with agentLaunchArgv() from @bhatti/agent-client.
// Usage: node agent/scripts/build-package.mjs --out DIR
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { buildSpawner } from "./build-spawner.mjs";
import { buildSudoShim } from "./build-sudo-shim.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const outIndex = process.argv.indexOf("--out");
const out = outIndex > 0 ? process.argv[outIndex + 1] : undefined;
if (out === undefined) {
  process.stderr.write("usage: build-package.mjs --out DIR\n");
  process.exit(2);
}
const TINI = "/usr/bin/tini-static";
if (!existsSync(TINI)) {
  process.stderr.write(`${TINI} missing: apt-get install tini\n`);
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "lib"), { recursive: true });

// 1. The agent bundle (same settings as scripts/build.mjs).
await build({
  absWorkingDir: root,
  entryPoints: ["agent/src/agent.ts"],
  outfile: join(out, "agent.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node24",
  conditions: ["source"],
  external: ["node-pty"],
  banner: {
    js: 'import { createRequire as __bhattiCreateRequire } from "node:module"; const require = __bhattiCreateRequire(import.meta.url);',
  },
  logLevel: "warning",
});

// 1b. The sudo shim: sudo.mjs and the bin/sudo wrapper, for a package mounted at /.bhatti.
await buildSudoShim(out, "/.bhatti");

// 1c. The spawner: the agent starts every one-shot and detached command through it.
buildSpawner(join(out, "spawner"));

// 2. Node, tini.
copyFileSync(process.execPath, join(out, "node"));
chmodSync(join(out, "node"), 0o755);
copyFileSync(TINI, join(out, "tini-static"));
chmodSync(join(out, "tini-static"), 0o755);

// 3. node-pty: only what runs.
const ptyDir = dirname(createRequire(join(root, "package.json")).resolve("node-pty/package.json"));
const ptyOut = join(out, "node_modules/node-pty");
mkdirSync(join(ptyOut, "build/Release"), { recursive: true });
cpSync(join(ptyDir, "lib"), join(ptyOut, "lib"), {
  recursive: true,
  filter: (src) =>
    !src.endsWith(".map") && !src.endsWith(".test.js") && !src.includes("windows") && !src.includes("conpty"),
});
copyFileSync(join(ptyDir, "build/Release/pty.node"), join(ptyOut, "build/Release/pty.node"));
copyFileSync(join(ptyDir, "package.json"), join(ptyOut, "package.json"));

// 4. Shared libraries and the loader, found with ldd.
const libraries = new Map();
for (const binary of [process.execPath, join(ptyDir, "build/Release/pty.node")]) {
  const lines = execFileSync("ldd", [binary], { encoding: "utf8" }).split("\n");
  for (const line of lines) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match !== null) libraries.set(basename(match[1]), match[1]);
  }
}
let loader;
for (const [name, path] of libraries) {
  copyFileSync(realpathSync(path), join(out, "lib", name));
  chmodSync(join(out, "lib", name), 0o755);
  if (name.startsWith("ld-linux")) loader = name;
}
if (loader !== "ld-linux-x86-64.so.2") {
  process.stderr.write(`unexpected dynamic loader ${loader}; only x86-64 glibc hosts are supported\n`);
  process.exit(1);
}

// 5. Manifest.
const agentHash = createHash("sha256")
  .update(readFileSync(join(out, "agent.mjs")))
  .digest("hex");
writeFileSync(
  join(out, "manifest.json"),
  `${JSON.stringify(
    {
      node: process.version,
      agent_sha256: agentHash,
      sudo_sha256: createHash("sha256")
        .update(readFileSync(join(out, "sudo.mjs")))
        .digest("hex"),
      spawner_sha256: createHash("sha256")
        .update(readFileSync(join(out, "spawner")))
        .digest("hex"),
      node_pty: JSON.parse(readFileSync(join(ptyDir, "package.json"), "utf8")).version,
      libraries: [...libraries.keys()].sort(),
    },
    null,
    2,
  )}\n`,
);
process.stdout.write(`agent package in ${out} (agent ${agentHash.slice(0, 12)}, node ${process.version})\n`);
