import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";
import type { ThermalService } from "@bhatti/proto";
import type { Logger } from "@bhatti/runtime";
import { type Client, ConnectError } from "@connectrpc/connect";

/**
 * Feeds the thermal service what the gateway sees, off the request path: `touch` only records
 * a timestamp in a map; a timer sends every touched sandbox in one `ReportActivity` call at
 * most every `flushDelayMs`. Pins (live interactive clients and requests in progress) go in
 * every report as the complete set; a change in interactive clients is sent at once, and while
 * any pin exists the set is re-sent every `heartbeatMs` so the thermal service (whose pins
 * expire after `pinTtlMs`) never loses them, even across its restart.
 */
export interface ActivityReporter {
  touch(sandboxId: string, at: number): void;
  /** The pin set changed in a way the thermal service must learn now (a client came or went). */
  pinsChanged(): void;
  close(): void;
}

export interface ActivityReporterOptions {
  /** The current pins; called at each flush. */
  pins(): { sandboxId: string; interactiveClients: number; inFlight: number }[];
  flushDelayMs?: number;
  heartbeatMs?: number;
  pinTtlMs?: number;
}

export function createActivityReporter(
  thermal: Client<typeof ThermalService>,
  logger: Logger,
  options: ActivityReporterOptions,
): ActivityReporter {
  const reporter = randomBytes(8).toString("hex");
  const flushDelayMs = options.flushDelayMs ?? 250;
  const heartbeatMs = options.heartbeatMs ?? 2_000;
  const pinTtlMs = options.pinTtlMs ?? 15_000;
  let pending = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let timerDue = 0;
  let sending = false;
  let again = false;
  let closed = false;
  let thermalInstance: string | undefined;
  let lastPinCount = 0;

  /** Arms the flush timer, or brings an armed one forward (a heartbeat must not delay a touch). */
  const schedule = (delayMs: number) => {
    if (closed) return;
    const due = Date.now() + delayMs;
    if (timer !== undefined) {
      if (timerDue <= due) return;
      clearTimeout(timer);
    }
    timerDue = due;
    timer = setTimeout(() => {
      timer = undefined;
      void flush();
    }, delayMs);
    timer.unref();
  };

  const flush = async () => {
    if (sending) {
      again = true;
      return;
    }
    sending = true;
    const batch = pending;
    pending = new Map();
    const pins = options.pins();
    try {
      const res = await thermal.reportActivity(
        {
          reporter,
          activity: [...batch].map(([sandboxId, at]) => ({ sandboxId, at: timestampFromMs(at) })),
          pins,
          pinTtlMs,
        },
        { timeoutMs: 5_000 },
      );
      // A restarted thermal service lost the pins: send them again right away.
      if (thermalInstance !== undefined && res.instance !== thermalInstance && pins.length > 0) again = true;
      thermalInstance = res.instance;
    } catch (e) {
      // Keep what was not delivered; the next flush carries it.
      for (const [id, at] of batch) if (at > (pending.get(id) ?? 0)) pending.set(id, at);
      logger.debug("reporting activity failed", { error: ConnectError.from(e).rawMessage });
      schedule(heartbeatMs);
    } finally {
      sending = false;
    }
    lastPinCount = pins.length;
    if (again) {
      again = false;
      schedule(0);
    } else if (pending.size > 0) schedule(flushDelayMs);
    else if (lastPinCount > 0) schedule(heartbeatMs);
  };

  return {
    touch(sandboxId, at) {
      pending.set(sandboxId, at);
      schedule(flushDelayMs);
    },
    pinsChanged: () => schedule(0),
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
