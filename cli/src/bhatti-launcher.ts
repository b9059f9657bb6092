// The `bhatti` executable (cli/dist/bhatti.mjs). It turns on Node's compile cache before any of
// the CLI's code is loaded, then runs the CLI: static imports would be compiled before the cache
// existed, so the CLI comes in through import(). `bhatti version --offline` (with or without --json)
// needs no command parser and is answered here; `list` and `exec`, the commands run most, each have a
// bundle of their own (one file to load); every other command goes through ./bhatti.ts.
import * as nodeModule from "node:module";
import { compileCacheDir } from "./compile-cache.js";
import { printVersion } from "./commands/version-action.js";
import { invokedCommand } from "./invoked-command.js";

const args = process.argv.slice(2).join(" ");
const offlineVersion = [
  "version --offline",
  "version --offline --json",
  "version --json --offline",
  "--json version --offline",
];
if (offlineVersion.includes(args)) {
  printVersion({ json: args.includes("--json") });
} else {
  const dir = compileCacheDir();
  // enableCompileCache exists from Node 22.1; older Nodes just run uncached.
  if (dir !== undefined) nodeModule.enableCompileCache?.(dir);
  const command = invokedCommand(process.argv.slice(2));
  if (command === "list" || command === "ls") await import("./bhatti-list.js");
  else if (command === "exec") await import("./bhatti-exec.js");
  else await import("./bhatti.js");
}
