import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type VmmSandbox, type VmmService, thermalName, vmmStatusName } from "@bhatti/proto";
import type { Logger } from "@bhatti/runtime";
import { Code, type Client, ConnectError } from "@connectrpc/connect";
import type { EngineEventKind, EngineSandbox, VmmPort } from "../domain/ports.js";

const PAUSE_TIMEOUT_MS = 30_000;
/** A checkpoint of a big sandbox takes seconds; a restore must also wait for the agent. */
const STOP_TIMEOUT_MS = 180_000;
const WAKE_TIMEOUT_MS = 180_000;

function engineSandboxOf(s: VmmSandbox | undefined): EngineSandbox {
  if (s === undefined) throw new ConnectError("vmm returned no sandbox", Code.Internal);
  const status = vmmStatusName(s.status) ?? "unknown";
  return {
    id: s.id,
    userId: s.userId,
    thermal: thermalName(s.thermal) ?? "cold",
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
    stop: async (id, options = {}) =>
      engineSandboxOf(
        (
          await vmm.stopSandbox(
            { id, onlyIfWarm: options.onlyIfWarm === true },
            { timeoutMs: STOP_TIMEOUT_MS },
          )
        ).sandbox,
      ),
    async ensureHot(id) {
      const r = await vmm.ensureHot({ id }, { timeoutMs: WAKE_TIMEOUT_MS });
      if (r.sandbox === undefined) throw new ConnectError("vmm returned no sandbox", Code.Internal);
      return { sandbox: r.sandbox, from: thermalName(r.from) ?? "hot", wakeMs: r.wakeMs };
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
              if (kind !== undefined) onEvent(ev.sandboxId, kind, thermalName(ev.thermal));
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
