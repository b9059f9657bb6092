import { request } from "node:http";
import { NetworkService, type ServiceHealth, StoreService, ThermalService, VmmService } from "@bhatti/proto";
import {
  type ProcessName,
  type ServerConfig,
  createServiceClient,
  healthProbeTimeoutMs,
  parseListenAddress,
  serviceSocketPath,
} from "@bhatti/runtime";

/** What one Health probe saw. */
export interface ProbeResult {
  /** The process answered. */
  readonly up: boolean;
  /** It answered and reports every dependency ready. */
  readonly ready: boolean;
  readonly pid?: number;
  /** Why it is not up or not ready. */
  readonly detail: string;
}

export interface HealthProbe {
  probe(name: ProcessName): Promise<ProbeResult>;
  close(): void;
}

function gatewayHealth(config: ServerConfig): Promise<ProbeResult> {
  const probeTimeoutMs = healthProbeTimeoutMs(config);
  const { host, port } = parseListenAddress(config.listen);
  const target = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return new Promise((resolve) => {
    const req = request({ host: target, port, path: "/health", timeout: probeTimeoutMs }, (res) => {
      res.resume();
      const ok = res.statusCode === 200;
      resolve({ up: ok, ready: ok, detail: ok ? "ok" : `GET /health: HTTP ${res.statusCode}` });
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (e) => resolve({ up: false, ready: false, detail: e.message }));
    req.end();
  });
}

/** Asks each service's Health over its Unix socket, and the gateway's GET /health. */
export function createHealthProbe(config: ServerConfig): HealthProbe {
  const sock = (name: "store" | "network" | "vmm" | "thermal") => serviceSocketPath(config.socket_dir, name);
  const clientOptions = { defaultTimeoutMs: config.rpc_timeout };
  const store = createServiceClient(StoreService, sock("store"), clientOptions);
  const network = createServiceClient(NetworkService, sock("network"), clientOptions);
  const vmm = createServiceClient(VmmService, sock("vmm"), clientOptions);
  const thermal = createServiceClient(ThermalService, sock("thermal"), clientOptions);
  const ask = async (call: () => Promise<{ health?: ServiceHealth | undefined }>): Promise<ProbeResult> => {
    try {
      const { health } = await call();
      if (health === undefined) return { up: false, ready: false, detail: "empty Health response" };
      const waiting = health.dependencies.filter((d) => !d.ready).map((d) => `${d.name}: ${d.detail}`);
      return {
        up: true,
        ready: health.ready,
        pid: health.pid,
        detail: health.ready ? "ok" : waiting.join("; "),
      };
    } catch (e) {
      return { up: false, ready: false, detail: (e as Error).message };
    }
  };
  // Deliberately shorter than rpc_timeout: a probe that cannot answer soon reports the process not up.
  const opts = { timeoutMs: healthProbeTimeoutMs(config) };
  return {
    probe(name) {
      switch (name) {
        case "store":
          return ask(() => store.client.health({}, opts));
        case "network":
          return ask(() => network.client.health({}, opts));
        case "vmm":
          return ask(() => vmm.client.health({}, opts));
        case "thermal":
          return ask(() => thermal.client.health({}, opts));
        case "gateway":
          return gatewayHealth(config);
      }
    },
    close() {
      for (const c of [store, network, vmm, thermal]) c.close();
    },
  };
}
