import { closeSync, openSync } from "node:fs";
import { join } from "node:path";

/**
 * Named crash points for the crash-consistency tests.
 *
 * A test starts a process with `BHATTI_CRASH_AT=<point>` (a comma-separated list is allowed);
 * when execution reaches a matching `crashPoint("<point>")` the process SIGKILLs itself, exactly as
 * an OOM kill or power cut would, with no chance to clean up. Injecting the kill at a named place
 * makes the crash matrix deterministic instead of depending on timing luck.
 *
 * With the variable unset (always, in production) a crash point costs one property read.
 */
const armed: ReadonlySet<string> = new Set(
  (process.env.BHATTI_CRASH_AT ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== ""),
);

/**
 * With `BHATTI_CRASH_ONCE_DIR` set, each point fires once per directory (a marker file named after
 * the point is created atomically before the kill), so a restarted process that inherited the same
 * environment runs through the point the next time. The crash matrix arms every point of one
 * process this way and walks through them on one product instance.
 */
const onceDir = process.env.BHATTI_CRASH_ONCE_DIR ?? "";

/** SIGKILLs this process if `point` is armed through `BHATTI_CRASH_AT`. */
export function crashPoint(point: string): void {
  if (armed.size === 0 || !armed.has(point)) return;
  if (onceDir !== "") {
    try {
      closeSync(openSync(join(onceDir, point), "wx"));
    } catch {
      return; // fired before (or the marker cannot be made): run through
    }
  }
  // One line so the test can tell an injected crash from a real one.
  process.stderr.write(`bhatti: crash point ${point}: SIGKILL\n`);
  process.kill(process.pid, "SIGKILL");
}

/** True when any crash point is armed (for tests that assert the variable reached a process). */
export function crashPointsArmed(): boolean {
  return armed.size > 0;
}
