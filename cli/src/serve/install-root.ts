import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ProcessName } from "@bhatti/runtime";
import { CliError } from "../cli-error.js";

function isBhattiRoot(dir: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown };
    return pkg.name === "bhatti";
  } catch {
    return false;
  }
}

/** The checkout or install the running `bhatti` comes from (the CLI bundle lives in `<root>/cli/dist`). */
export function findInstallRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from, i = 0; i < 8; i++, dir = dirname(dir)) {
    if (isBhattiRoot(dir)) return dir;
  }
  throw new CliError(`cannot find the bhatti installation above ${from}`);
}

/** The bundled entry point of each process, e.g. `<root>/services/store/dist/main.js`. */
export function processScript(root: string, name: ProcessName): string {
  const script =
    name === "gateway" ? join(root, "gateway/dist/main.js") : join(root, "services", name, "dist/main.js");
  if (!existsSync(script)) {
    throw new CliError(`${script} does not exist`, "build bhatti first: npm run build (or ./install.sh)");
  }
  return script;
}
