import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { clientConfigPath } from "./client-config.js";

/** Sandbox names seen by `list`/`create`, for shell completion (which never touches the network). */
function cachePath(): string {
  return join(dirname(clientConfigPath()), "sandbox-names");
}

export function readSandboxNames(): string[] {
  try {
    return readFileSync(cachePath(), "utf8")
      .split("\n")
      .filter((n) => n !== "");
  } catch {
    return [];
  }
}

/** Best effort: a read-only home must not fail the command. */
export function writeSandboxNames(names: readonly string[]): void {
  try {
    mkdirSync(dirname(cachePath()), { recursive: true, mode: 0o700 });
    writeFileSync(cachePath(), `${[...new Set(names)].sort().join("\n")}\n`, { mode: 0o600 });
  } catch {
    // completion just knows fewer names
  }
}
