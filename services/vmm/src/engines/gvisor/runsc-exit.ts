import { statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * SIGKILLs every process of the runsc binary among `pids()` (the sandbox's cgroup: the Sentry,
 * its ptrace stubs, the gofer) and waits, at most `timeoutMs`, until they are gone; true if
 * they all went. For a sandbox whose checkpoint is complete (nothing of it is needed any more).
 *
 * Why: the checkpointed sandbox does not exit by itself here (measured: still there 2 s later),
 * and `runsc delete` kills it and then re-checks on a constant 100 ms backoff (runsc's
 * waitForStopped), which made ~130 ms of every stop. Killed here, the launcher's tini reaps them
 * at once and a 2 ms poll sees them go; the delete after it then finds nothing running. A
 * process is runsc's when its /proc/<pid>/exe is the same file as `runscPath` (the Sentry
 * re-executes /proc/self/exe); the launcher's shell, tini, head and sleep are not, and are left
 * to the delete and the cgroup kill that follow.
 */
export async function killRunscProcesses(
  pids: () => readonly number[],
  runscPath: string,
  timeoutMs: number,
): Promise<boolean> {
  let binary: { dev: number; ino: number };
  try {
    binary = statSync(runscPath);
  } catch {
    return false;
  }
  const runscPids = () =>
    pids().filter((pid) => {
      try {
        const s = statSync(`/proc/${pid}/exe`);
        return s.dev === binary.dev && s.ino === binary.ino;
      } catch {
        return false; // exited
      }
    });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = runscPids();
    if (left.length === 0) return true;
    if (Date.now() > deadline) return false;
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await sleep(2);
  }
}
