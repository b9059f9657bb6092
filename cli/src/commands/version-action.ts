import { BHATTI_VERSION } from "@bhatti/runtime/version";
import type { GlobalOptions } from "../global-options.js";
import { emit } from "../output.js";

/** What `bhatti version --offline` prints: the CLI's version and the Node running it. */
export function printVersion(options: GlobalOptions): void {
  emit(options, { version: BHATTI_VERSION, node: process.versions.node }, () =>
    process.stdout.write(`bhatti ${BHATTI_VERSION} (node ${process.version})\n`),
  );
}

/**
 * `bhatti version`: the version, then whether the branch the installation follows has newer
 * commits (a `git fetch`, at most 10 s). Offline, or not a git install, it says it could not
 * check and still exits 0.
 */
export async function printVersionAndUpdate(options: GlobalOptions): Promise<void> {
  const [{ checkForUpdate }, { findInstallRoot }] = await Promise.all([
    import("./update-source.js"),
    import("../serve/install-root.js"),
  ]);
  let root: string | undefined;
  try {
    root = findInstallRoot();
  } catch {
    root = undefined;
  }
  const update =
    root === undefined
      ? { current: "", available: null, error: "cannot find the installation" }
      : await checkForUpdate(root, 10_000);
  emit(options, { version: BHATTI_VERSION, node: process.versions.node, update }, () => {
    const commit = update.current === "" ? "" : `, commit ${update.current.slice(0, 12)}`;
    process.stdout.write(`bhatti ${BHATTI_VERSION} (node ${process.version}${commit})\n`);
    if (update.available === null) process.stdout.write(`could not check for updates: ${update.error}\n`);
    else if (update.available)
      process.stdout.write(
        `update available: ${update.latest?.slice(0, 12)} on ${update.ref} (run: bhatti update)\n`,
      );
    else process.stdout.write(`up to date with ${update.ref}\n`);
  });
}
