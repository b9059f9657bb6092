import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { type ThermalService, ThermalState, thermalStateOf } from "@bhatti/proto";
import { processHealth, requireSandboxId } from "@bhatti/runtime";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Pin } from "../domain/pin-registry.js";
import type { SandboxThermalView, ThermalManager } from "../domain/thermal-manager.js";

const DEFAULT_PIN_TTL_MS = 30_000;

function viewToProto(v: SandboxThermalView) {
  return {
    sandboxId: v.sandboxId,
    thermal: v.thermal === "" ? ThermalState.UNSPECIFIED : thermalStateOf(v.thermal),
    thermalSince: timestampFromMs(v.thermalSince),
    status: v.status,
    keepHot: v.keepHot,
    lastActivity: timestampFromMs(v.lastActivity),
    interactiveClients: v.pin.interactiveClients,
    inFlight: v.pin.inFlight,
    activityFailures: v.activityFailures,
    snapshotFailures: v.snapshotFailures,
  };
}

/**
 * The ThermalService handlers, Health included: validation and translation around the manager.
 *
 * No error interceptor: every failure the manager reports is already a ConnectError with its code
 * (the vmm's and store's answers pass through as they came, `WakeBusyError` is ResourceExhausted, a
 * shutdown is Unavailable), and validation here throws InvalidArgument/NotFound. Anything else is
 * a bug and becomes Internal without detail in the request-context interceptor.
 */
export function createThermalHandlers(
  manager: ThermalManager,
  instance: string,
): ServiceImpl<typeof ThermalService> {
  return {
    health() {
      const r = manager.readiness();
      const counts = manager.counts();
      return {
        health: processHealth(
          "thermal",
          [
            { name: "vmm", ready: r.vmm === undefined, detail: r.vmm ?? "ok" },
            { name: "store", ready: r.store === undefined, detail: r.store ?? "ok" },
          ],
          {
            sandboxes_hot: String(counts.hot),
            sandboxes_warm: String(counts.warm),
            sandboxes_cold: String(counts.cold),
            sandboxes_unknown: String(counts.unknown),
          },
        ),
      };
    },
    reportActivity(req) {
      if (req.reporter === "") throw new ConnectError("reporter is required", Code.InvalidArgument);
      const activity = new Map<string, number>();
      for (const a of req.activity) {
        activity.set(requireSandboxId(a.sandboxId), a.at === undefined ? 0 : timestampMs(a.at));
      }
      const pins = new Map<string, Pin>();
      for (const p of req.pins) {
        pins.set(requireSandboxId(p.sandboxId), {
          interactiveClients: p.interactiveClients,
          inFlight: p.inFlight,
        });
      }
      manager.report({
        reporter: req.reporter,
        activity,
        pins,
        pinTtlMs: req.pinTtlMs === 0 ? DEFAULT_PIN_TTL_MS : req.pinTtlMs,
      });
      return { instance };
    },
    async wake(req) {
      const r = await manager.wake(requireSandboxId(req.sandboxId));
      return { sandbox: r.sandbox, from: thermalStateOf(r.from), wakeMs: r.wakeMs };
    },
    getThermal(req) {
      const v = manager.get(requireSandboxId(req.sandboxId));
      if (v === undefined) throw new ConnectError(`sandbox ${req.sandboxId} not found`, Code.NotFound);
      return { sandbox: viewToProto(v) };
    },
    listThermal() {
      return { sandboxes: manager.list().map(viewToProto), counts: manager.counts() };
    },
    async snapshotAll(req) {
      return manager.snapshotAll(req.parallelism === 0 ? 10 : req.parallelism);
    },
  };
}
