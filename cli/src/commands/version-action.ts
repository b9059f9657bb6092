import { BHATTI_VERSION } from "@bhatti/runtime/version";
import type { GlobalOptions } from "../global-options.js";
import { emit } from "../output.js";

/** What `bhatti version` prints: the CLI's version and the Node running it. */
export function printVersion(options: GlobalOptions): void {
  emit(options, { version: BHATTI_VERSION, node: process.versions.node }, () =>
    process.stdout.write(`bhatti ${BHATTI_VERSION} (node ${process.version})\n`),
  );
}
