#!/usr/bin/env node
// Compiles the agent's resident spawner (agent/spawner/spawner.c) into a static binary, so it
// runs in any image (no libc needed in the sandbox). Used by build-package.mjs (package file
// `spawner`) and scripts/build.mjs (agent/dist/spawner, beside the standalone bundle).
// As a script: build-spawner.mjs --out FILE
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const source = join(dirname(fileURLToPath(import.meta.url)), "../spawner/spawner.c");

/** gcc -static -O2 -s: libc6-dev provides libc.a (install.sh installs build-essential). */
export function buildSpawner(outFile) {
  mkdirSync(dirname(outFile), { recursive: true });
  execFileSync("gcc", ["-static", "-O2", "-s", "-Wall", "-Wextra", "-Werror", "-o", outFile, source], {
    stdio: ["ignore", "inherit", "inherit"],
  });
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--out");
  if (i < 0 || process.argv[i + 1] === undefined) {
    process.stderr.write("usage: build-spawner.mjs --out FILE\n");
    process.exit(2);
  }
  buildSpawner(process.argv[i + 1]);
}
