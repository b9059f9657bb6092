import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Product } from "../thermal/product-harness.js";
import { type RunBlock, parseDocBlocks } from "./doc-blocks.js";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The image the docs create sandboxes from; install.sh builds it (the test cannot: debootstrap is slow). */
export const MINIMAL_IMAGE = "/var/lib/bhatti/images/minimal/image.json";
export const minimalImageMissing = !existsSync(MINIMAL_IMAGE);

export interface BlockResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The run blocks of docs/<page>. */
export function runBlocksOf(page: string): RunBlock[] {
  const blocks = parseDocBlocks(readFileSync(join(repoRoot, "docs", page), "utf8"));
  return blocks.filter((b): b is RunBlock => b.kind === "run");
}

/**
 * A shell like the reader's after install: `bhatti` on the PATH (the built CLI, as install.sh
 * links it), the admin's client config, a HOME of its own, inside the product's netns.
 */
export function docShell(product: Product): (script: string) => Promise<BlockResult> {
  const home = join(product.env.stateDir, "doc-home");
  const bin = join(home, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, "bhatti"),
    `#!/bin/sh\nexec ${process.execPath} ${join(repoRoot, "cli/dist/bhatti.mjs")} "$@"\n`,
  );
  chmodSync(join(bin, "bhatti"), 0o755);
  const env = {
    PATH: `${bin}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
    HOME: home,
    LANG: "C.UTF-8",
    BHATTI_CLIENT_CONFIG: join(product.env.stateDir, "client.yaml"),
    BHATTI_URL: `http://127.0.0.1:${product.port}`,
  };
  return (script) =>
    new Promise((resolve) => {
      const child = execFile(
        "nsenter",
        [`--net=${product.env.hostNetnsPath}`, "--", "bash", "-e", "-c", script],
        { env, cwd: home, timeout: 240_000, maxBuffer: 16 << 20 },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
          resolve({ code, stdout, stderr });
        },
      );
      // Like an agent or a script: stdin is not a terminal (and is empty).
      child.stdin?.end();
    });
}
