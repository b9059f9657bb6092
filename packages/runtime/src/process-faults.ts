import type { Logger } from "./logger.js";

/**
 * The deliberate policy of every bhatti process for faults that escaped their handler.
 *
 * An uncaught exception leaves the process in an unknown state, so it is logged and the process
 * exits with code 70 (EX_SOFTWARE) for the supervisor to restart it. An unhandled promise rejection
 * is logged as a bug and the process keeps serving: every path that can reject on input is handled
 * at its cause, and this is only the net under them, so one tenant's stray rejection cannot end
 * every other tenant's streams. Installing it twice is harmless.
 */
export function installProcessFaultPolicy(logger: Logger, options: { exit?: (code: number) => void } = {}): void {
  if (installed) return;
  installed = true;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  process.on("unhandledRejection", (reason) => {
    logger.error("unhandled promise rejection (bug: kept running)", { error: asError(reason) });
  });
  process.on("uncaughtException", (err, origin) => {
    logger.error("uncaught exception: exiting", { error: err, origin });
    exit(UNCAUGHT_EXCEPTION_EXIT_CODE);
  });
}

/** Exit code after an uncaught exception (sysexits EX_SOFTWARE). */
export const UNCAUGHT_EXCEPTION_EXIT_CODE = 70;

let installed = false;

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
