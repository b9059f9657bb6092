import { ThermalService, thermalStateOf } from "@bhatti/proto";
import { processHealth, requireSandboxId } from "@bhatti/runtime";
import { Code, type ConnectRouter, ConnectError } from "@connectrpc/connect";
import type { Pin } from "../domain/pin-registry.js";
import type { SandboxThermalView, ThermalManager } from "../domain/thermal-manager.js";

const DEFAULT_PIN_TTL_MS = 30_000;

function viewToProto(v: SandboxThermalView) {
  return {
    sandboxId: v.sandboxId,
    thermal: v.thermal,
    thermalSinceMs: BigInt(v.thermalSince),
    status: v.status,
    keepHot: v.keepHot,
    lastActivityMs: BigInt(v.lastActivity),
    interactiveClients: v.pin.interactiveClients,
    inFlight: v.pin.inFlight,
    activityFailures: v.activityFailures,
    snapshotFailures: v.snapshotFailures,
  };
}

/** The ThermalService handlers: validation and translation around the manager. */
export function thermalRoutes(manager: ThermalManager, instance: string): (router: ConnectRouter) => void {
  return (router) =>
    router.service(ThermalService, {
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
        for (const a of req.activity) activity.set(requireSandboxId(a.sandboxId), Number(a.atMs));
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
    });
}
