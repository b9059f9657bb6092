import { setTimeout as sleep } from "node:timers/promises";
import type { Logger, ProcessName } from "@bhatti/runtime";
import { CliError } from "../cli-error.js";
import { type RunningChild, describeExit, startChild } from "./child-process.js";
import type { HealthProbe } from "./health-probe.js";

/**
 * Start-up order: the store first (everyone keeps state through it), then the network, the
 * vmm (which attaches sandboxes to the network), then thermal and the public gateway.
 * Shutdown runs in reverse.
 */
export const START_ORDER: readonly (readonly ProcessName[])[] = [
  ["store"],
  ["network"],
  ["vmm"],
  ["thermal", "gateway"],
];

export interface SupervisorOptions {
  readonly scripts: Readonly<Record<ProcessName, string>>;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly probe: HealthProbe;
  readonly logger: Logger;
  /** How long a child may take to answer Health at start. */
  readonly startTimeoutMs?: number;
  /** How long to wait for every dependency to report ready before carrying on with a warning. */
  readonly readyTimeoutMs?: number;
  /** Time a child gets between SIGTERM and SIGKILL. */
  readonly stopGraceMs: number;
}

export interface Supervisor {
  /** Starts every process in order and waits until all answer Health; throws CliError if one cannot start. */
  start(): Promise<void>;
  /** Stops every process (reverse order); later calls return the same promise. */
  stop(): Promise<void>;
  /** Kills every child at once (a second Ctrl-C). */
  kill(): void;
  /** The pid of each running child. */
  pids(): Partial<Record<ProcessName, number>>;
}

interface Slot {
  readonly name: ProcessName;
  child: RunningChild | undefined;
  /** Consecutive quick crashes, for the backoff. */
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/** A child that ran this long before crashing is restarted at once; quicker crashes back off. */
const stableAfterMs = 30_000;
const firstBackoffMs = 250;
const maxBackoffMs = 10_000;

export function restartDelayMs(failures: number): number {
  return Math.min(maxBackoffMs, firstBackoffMs * 2 ** Math.max(0, failures - 1));
}

export function createSupervisor(options: SupervisorOptions): Supervisor {
  const { logger, probe } = options;
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const slots = new Map<ProcessName, Slot>();
  for (const tier of START_ORDER) {
    for (const name of tier)
      slots.set(name, { name, child: undefined, failures: 0, restartTimer: undefined });
  }
  let phase: "idle" | "starting" | "running" | "stopping" = "idle";
  let stopping: Promise<void> | undefined;
  let startFailure: CliError | undefined;

  const slotOf = (name: ProcessName): Slot => {
    const slot = slots.get(name);
    if (slot === undefined) throw new Error(`unknown process ${name}`);
    return slot;
  };

  const spawn = (slot: Slot): RunningChild => {
    const child = startChild(slot.name, options.scripts[slot.name], options.args, options.env);
    slot.child = child;
    void child.exited.then((exit) => onExit(slot, child, describeExit(exit)));
    return child;
  };

  const onExit = (slot: Slot, child: RunningChild, how: string) => {
    if (slot.child !== child) return;
    if (phase === "starting") {
      // Any exit during start-up (even of a process that was already up) fails the start.
      const last = child.lastLines.at(-1);
      startFailure ??= new CliError(`${slot.name} exited during start-up (${how})${last ? `: ${last}` : ""}`);
      return;
    }
    if (phase !== "running") return;
    slot.child = undefined;
    const ranFor = Date.now() - child.startedAt;
    slot.failures = ranFor >= stableAfterMs ? 1 : slot.failures + 1;
    const delay = restartDelayMs(slot.failures);
    logger.warn("process exited; restarting", { process: slot.name, how, restart_in_ms: delay });
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (phase !== "running") return;
      const next = spawn(slot);
      void waitUp(slot.name, next).then(
        () => logger.info("process restarted and healthy", { process: slot.name, pid: next.process.pid }),
        (e: unknown) => logger.warn("restarted process did not come up", { process: slot.name, error: e }),
      );
    }, delay);
  };

  /** Polls Health until the child answers; rejects if it exits first or takes too long. */
  const waitUp = async (name: ProcessName, child: RunningChild): Promise<void> => {
    let exitedHow: string | undefined;
    void child.exited.then((exit) => {
      exitedHow = describeExit(exit);
    });
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (phase === "starting" && startFailure !== undefined) throw startFailure;
      if (exitedHow !== undefined) {
        const last = child.lastLines.at(-1);
        throw new CliError(`${name} exited during start-up (${exitedHow})${last ? `: ${last}` : ""}`);
      }
      if (phase === "stopping") throw new CliError("stopped during start-up");
      const result = await probe.probe(name);
      if (result.up && exitedHow === undefined) return;
      if (Date.now() > deadline) {
        throw new CliError(`${name} did not answer Health within ${startTimeoutMs} ms: ${result.detail}`);
      }
      await sleep(50);
    }
  };

  const waitAllReady = async (): Promise<string[]> => {
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      const names = [...slots.keys()];
      const results = await Promise.all(names.map((n) => probe.probe(n)));
      const waiting = names.flatMap((n, i) =>
        results[i]?.ready ? [] : [`${n} (${results[i]?.detail ?? "?"})`],
      );
      if (waiting.length === 0 || Date.now() > deadline || phase !== "running") return waiting;
      await sleep(200);
    }
  };

  const supervisor: Supervisor = {
    async start() {
      phase = "starting";
      const began = Date.now();
      try {
        for (const tier of START_ORDER) {
          await Promise.all(tier.map((name) => waitUp(name, spawn(slotOf(name)))));
        }
        if (startFailure !== undefined) throw startFailure;
      } catch (e) {
        await supervisor.stop();
        throw e;
      }
      phase = "running";
      logger.info("all processes started", { ms: Date.now() - began, pids: supervisor.pids() });
      const waiting = await waitAllReady();
      if (waiting.length === 0) logger.info("all processes healthy", { ms: Date.now() - began });
      else logger.warn("running, but not every process is ready", { not_ready: waiting });
    },
    stop() {
      stopping ??= (async () => {
        phase = "stopping";
        for (const slot of slots.values()) {
          if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
          slot.restartTimer = undefined;
        }
        for (const tier of [...START_ORDER].reverse()) {
          await Promise.all(
            tier.map(async (name) => {
              const child = slotOf(name).child;
              if (child === undefined) return;
              const exit = await child.stop(options.stopGraceMs);
              logger.info("process stopped", { process: name, how: describeExit(exit) });
            }),
          );
        }
      })();
      return stopping;
    },
    kill() {
      for (const slot of slots.values()) slot.child?.process.kill("SIGKILL");
    },
    pids() {
      const out: Partial<Record<ProcessName, number>> = {};
      for (const [name, slot] of slots) {
        const pid = slot.child?.process.pid;
        if (pid !== undefined) out[name] = pid;
      }
      return out;
    },
  };
  return supervisor;
}
