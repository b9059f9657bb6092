import { timestampMs } from "@bufbuild/protobuf/wkt";
import { ThermalState, type VmmSandbox, VmmSandboxStatus, type VmmService } from "@bhatti/proto";
import type { Logger } from "@bhatti/runtime";
import { Code, type Client, ConnectError } from "@connectrpc/connect";
import type { EngineEventKind, EngineSandbox, VmmPort } from "../domain/ports.js";
import type { Thermal } from "../domain/thermal-policy.js";

const PAUSE_TIMEOUT_MS = 30_000;
/** A checkpoint of a big sandbox takes seconds; a restore must also wait for the agent. */
const STOP_TIMEOUT_MS = 180_000;
const WAKE_TIMEOUT_MS = 180_000;

export function thermalOf(t: ThermalState): Thermal | undefined {
  switch (t) {
    case ThermalState.HOT:
      return "hot";
    case ThermalState.WARM:
      return "warm";
    case ThermalState.COLD:
      return "cold";
    default:
      return undefined;
  }
}

function engineSandboxOf(s: VmmSandbox | undefined): EngineSandbox {
  if (s === undefined) throw new ConnectError("vmm returned no sandbox", Code.Internal);
  const status =
    s.status === VmmSandboxStatus.RUNNING
      ? "running"
      : s.status === VmmSandboxStatus.STOPPED
        ? "stopped"
        : "unknown";
  return {
    id: s.id,
    userId: s.userId,
    thermal: thermalOf(s.thermal) ?? "cold",
    status,
    thermalSince: s.thermalSince === undefined ? 0 : timestampMs(s.thermalSince),
    agent:
      s.agent !== undefined && s.agent.host !== ""
        ? {
            host: s.agent.host,
            controlPort: s.agent.controlPort,
            forwardPort: s.agent.forwardPort,
            token: s.agent.token,
          }
        : undefined,
  };
}

const eventKinds: Record<string, EngineEventKind> = {
  "thermal.pause": "cooled",
  "thermal.snapshot": "cooled",
  "thermal.restore_failed": "changed",
  "thermal.resume": "woke",
  "thermal.restore": "woke",
  "sandbox.created": "changed",
  "sandbox.adopted": "changed",
  "sandbox.destroyed": "destroyed",
};

/** VmmPort over the vmm's Connect API. */
export function createVmmPort(vmm: Client<typeof VmmService>, logger: Logger): VmmPort {
  return {
    list: async () => (await vmm.listSandboxes({})).sandboxes.map(engineSandboxOf),
    pause: async (id) =>
      engineSandboxOf((await vmm.pauseSandbox({ id }, { timeoutMs: PAUSE_TIMEOUT_MS })).sandbox),
    stop: async (id) =>
      engineSandboxOf((await vmm.stopSandbox({ id }, { timeoutMs: STOP_TIMEOUT_MS })).sandbox),
    async ensureHot(id) {
      const r = await vmm.ensureHot({ id }, { timeoutMs: WAKE_TIMEOUT_MS });
      if (r.sandbox === undefined) throw new ConnectError("vmm returned no sandbox", Code.Internal);
      return { sandbox: r.sandbox, from: thermalOf(r.from) ?? "hot", wakeMs: r.wakeMs };
    },
    watch(onEvent) {
      const abort = new AbortController();
      let backoffMs = 250;
      const loop = async () => {
        while (!abort.signal.aborted) {
          try {
            for await (const ev of vmm.watchEvents({}, { signal: abort.signal, timeoutMs: 0 })) {
              backoffMs = 250;
              const kind = eventKinds[ev.kind];
              if (kind !== undefined) onEvent(ev.sandboxId, kind, thermalOf(ev.thermal));
            }
          } catch (e) {
            if (abort.signal.aborted) return;
            const err = ConnectError.from(e);
            if (err.code !== Code.Unavailable)
              logger.debug("vmm event feed failed", { error: err.rawMessage });
          }
          await new Promise((r) => setTimeout(r, backoffMs).unref());
          backoffMs = Math.min(backoffMs * 2, 5_000);
        }
      };
      void loop();
      return () => abort.abort();
    },
  };
}
