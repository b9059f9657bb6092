import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_PACKAGE_LAYOUT } from "@bhatti/agent-client";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Builds the read-only agent package (mounted at /.bhatti) into `out`: the agent owner's
 * `agent/scripts/build-package.mjs` when it exists, otherwise the same layout assembled here
 * (AGENT_PACKAGE_LAYOUT): tini-static, Node with its shared libraries and loader, the agent
 * bundle and node-pty.
 */
export function buildAgentPackage(out: string): string {
  const script = join(root, "agent/scripts/build-package.mjs");
  if (existsSync(script)) {
    execFileSync(process.execPath, [script, "--out", out], { stdio: "inherit" });
    return out;
  }
  const bundle = join(root, "agent/dist/agent.js");
  if (!existsSync(bundle)) throw new Error(`agent bundle ${bundle} missing: run node scripts/build.mjs`);
  mkdirSync(join(out, AGENT_PACKAGE_LAYOUT.libDir), { recursive: true });
  copyFileSync("/usr/bin/tini-static", join(out, AGENT_PACKAGE_LAYOUT.tini));
  const node = process.execPath;
  copyFileSync(node, join(out, AGENT_PACKAGE_LAYOUT.node));
  const ldd = execFileSync("ldd", [node], { encoding: "utf8" });
  for (const line of ldd.split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+ld-linux\S*)/.exec(line);
    if (m?.[1]) copyFileSync(m[1], join(out, AGENT_PACKAGE_LAYOUT.libDir, m[1].split("/").pop() as string));
  }
  if (!existsSync(join(out, AGENT_PACKAGE_LAYOUT.loader))) {
    throw new Error("ldd did not list the dynamic loader");
  }
  copyFileSync(bundle, join(out, AGENT_PACKAGE_LAYOUT.agent));
  const ptySrc = join(root, "node_modules/node-pty");
  const ptyDst = join(out, AGENT_PACKAGE_LAYOUT.nodePty);
  mkdirSync(join(ptyDst, "build/Release"), { recursive: true });
  cpSync(join(ptySrc, "lib"), join(ptyDst, "lib"), { recursive: true });
  copyFileSync(join(ptySrc, "package.json"), join(ptyDst, "package.json"));
  copyFileSync(join(ptySrc, "build/Release/pty.node"), join(ptyDst, "build/Release/pty.node"));
  JSON.parse(readFileSync(join(ptyDst, "package.json"), "utf8"));
  return out;
}
