#!/usr/bin/env node
// Builds the sudo shim of the agent package:
//
//   sudo.mjs     the esbuild bundle of agent/src/sudo/sudo.ts
//   bin/sudo     a POSIX sh wrapper starting it with the package's Node through the
//                package's loader (like agentLaunchArgv), so any image can run it
//
// The engine mounts <package>/bin/sudo over the image's /usr/bin/sudo.
// Used by build-package.mjs; as a script (tests): build-sudo-shim.mjs --out DIR [--mount-point P]
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * The wrapper. sudo never passes the dynamic loader's variables on, and they must not reach
 * our Node either (a musl image's LD_PRELOAD would break it); NODE_OPTIONS is moved aside so
 * it cannot change our Node, and the shim gives it back to the command.
 */
function wrapperScript(mountPoint) {
  const at = (rel) => `${mountPoint.replace(/\/+$/, "")}/${rel}`;
  return `#!/bin/sh
# sudo for bhatti sandboxes: runs the command as root through the guest agent's sudo socket.
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT
if [ "\${NODE_OPTIONS+set}" = set ]; then
  BHATTI_SUDO_NODE_OPTIONS=$NODE_OPTIONS
  export BHATTI_SUDO_NODE_OPTIONS
  unset NODE_OPTIONS
fi
exec ${at("lib/ld-linux-x86-64.so.2")} --library-path ${at("lib")} ${at("node")} --max-semi-space-size=1 --max-old-space-size=64 ${at("sudo.mjs")} "$@"
`;
}

/** Writes sudo.mjs and bin/sudo into `out` (the package dir), for a package mounted at `mountPoint`. */
export async function buildSudoShim(out, mountPoint = "/.bhatti") {
  mkdirSync(join(out, "bin"), { recursive: true });
  await build({
    absWorkingDir: root,
    entryPoints: ["agent/src/sudo/sudo.ts"],
    outfile: join(out, "sudo.mjs"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    conditions: ["source"],
    logLevel: "warning",
  });
  writeFileSync(join(out, "bin/sudo"), wrapperScript(mountPoint));
  chmodSync(join(out, "bin/sudo"), 0o755);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const out = arg("--out");
  if (out === undefined) {
    process.stderr.write("usage: build-sudo-shim.mjs --out DIR [--mount-point PATH]\n");
    process.exit(2);
  }
  await buildSudoShim(out, arg("--mount-point") ?? "/.bhatti");
}
