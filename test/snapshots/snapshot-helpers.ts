import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { WebSocket } from "ws";
import { type Product, exec } from "../thermal/product-harness.js";

/** Runs `sh -c script` in the sandbox; fails the test on a non-200 or non-zero exit. */
export async function sh(product: Product, id: string, script: string): Promise<string> {
  const r = await exec(product, id, ["sh", "-c", script]);
  if (r.status !== 200 || r.body.exit_code !== 0) {
    throw new Error(`exec in ${id} (${script}): ${r.status} ${JSON.stringify(r.body)}`);
  }
  return r.body.stdout;
}

/**
 * A process that holds a random value only in its memory and rewrites it to /tmp/tick (a tmpfs,
 * so RAM too) every 200 ms; its pid is in /tmp/ticker.pid.
 */
export const TICKER =
  'v="v$RANDOM-$RANDOM-$$"; echo $$ > /tmp/ticker.pid; while :; do echo "$v" > /tmp/tick.n; mv /tmp/tick.n /tmp/tick; sleep 0.2; done';

export async function startTicker(product: Product, id: string): Promise<{ pid: string; value: string }> {
  const r = await product.http("POST", `/sandboxes/${id}/exec`, {
    body: { cmd: ["sh", "-c", TICKER], detach: true },
  });
  if (r.status !== 200) throw new Error(`detached exec: ${r.status} ${r.text}`);
  return readTicker(product, id);
}

/** The ticker as it is now: waits for a fresh tick (the file is removed first, so it must be rewritten). */
export async function readTicker(product: Product, id: string): Promise<{ pid: string; value: string }> {
  await sh(product, id, "rm -f /tmp/tick");
  const deadline = Date.now() + 30_000;
  for (;;) {
    const out = await sh(product, id, "cat /tmp/ticker.pid 2>/dev/null; cat /tmp/tick 2>/dev/null; true");
    const [pid, value] = out.trim().split("\n");
    if (pid && value) return { pid, value };
    if (Date.now() > deadline) throw new Error(`ticker in ${id} is not ticking (${JSON.stringify(out)})`);
    await sleep(100);
  }
}

/** Reads WebSocket output until `pattern` shows up (text of binary and text frames). */
export function waitForOutput(ws: WebSocket, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => {
      ws.off("message", onMessage);
      reject(new Error(`no ${pattern} in WebSocket output: ${JSON.stringify(seen.slice(-500))}`));
    }, timeoutMs);
    const onMessage = (data: Buffer) => {
      seen += data.toString("utf8");
      if (pattern.test(seen)) {
        clearTimeout(timer);
        ws.off("message", onMessage);
        resolve(seen);
      }
    };
    ws.on("message", onMessage);
  });
}

/** Every entry under `<state>/snapshots/<user>/` (complete snapshots and leftovers alike). */
export function snapshotDirs(product: Product): string[] {
  const root = join(product.env.stateDir, "snapshots");
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((u) => readdirSync(join(root, u)).map((e) => `${u}/${e}`));
}

export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await probe();
      if (done(last)) return last;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what}: never happened; last ${JSON.stringify(last)}`);
    await sleep(200);
  }
}
