import type { Logger } from "./logger.js";

export type ShutdownStep = () => Promise<void> | void;

export interface ShutdownController {
  /** Registers a step; steps run in reverse order of registration (last started, first stopped). */
  add(step: ShutdownStep): void;
  /** Runs every step once, then resolves; later calls return the same promise. */
  shutdown(reason: string): Promise<void>;
  /** Aborted as soon as shutdown begins, for loops and timers to stop on. */
  readonly signal: AbortSignal;
}

/**
 * Graceful shutdown on SIGTERM and SIGINT: stop taking work, let steps finish within
 * `timeoutMs`, then exit 0 (or 1 if the time ran out or a step failed).
 */
export function installShutdown(logger: Logger, timeoutMs: number): ShutdownController {
  const steps: ShutdownStep[] = [];
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  const controller: ShutdownController = {
    add: (step) => void steps.push(step),
    signal: abort.signal,
    shutdown(reason) {
      running ??= (async () => {
        logger.info("shutting down", { reason });
        abort.abort();
        let failed = false;
        for (const step of steps.reverse()) {
          try {
            await step();
          } catch (e) {
            failed = true;
            logger.error("shutdown step failed", { error: e });
          }
        }
        if (failed) process.exitCode = 1;
      })();
      return running;
    },
  };
  const begin = (reason: string) => {
    const timer = setTimeout(() => {
      logger.error("shutdown timed out", { timeout_ms: timeoutMs });
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    void controller.shutdown(reason).then(() => {
      clearTimeout(timer);
      process.exit();
    });
  };
  process.once("SIGTERM", begin);
  process.once("SIGINT", begin);
  // Started by `bhatti serve` with an IPC channel: if the supervisor dies, even by SIGKILL, the
  // channel closes and this process shuts down too, leaving no orphan holding its socket.
  if (process.channel !== undefined) {
    process.channel.unref();
    process.once("disconnect", () => begin("supervisor exited"));
  }
  return controller;
}
