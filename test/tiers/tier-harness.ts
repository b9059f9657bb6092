import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { createAgentClient, type AgentClient } from "@bhatti/agent-client";
import type { Engine, SandboxInfo, SandboxSpec } from "@bhatti/service-vmm/engine";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "../engine-conformance/engine-factory.js";
import {
  createGvisorTestEnv,
  type GvisorTestEnv,
  gvisorFactory,
  gvisorLeaks,
} from "../engine-conformance/gvisor-factory.js";

/**
 * Tier tests run the real gvisor engine (test state dir, cgroups and netns of the test run)
 * over a tier image built beforehand by images/<tier>/build.sh: `npm run test:tiers` builds the
 * missing ones into BHATTI_TIERS_STATE_DIR (default /var/lib/bhatti, where install.sh
 * --tiers puts them), so a built tier is reused between runs. The image is only ever an overlay
 * lower dir, so the test links it read-only into its own state dir.
 */
export const TIERS_STATE_DIR = process.env["BHATTI_TIERS_STATE_DIR"] ?? "/var/lib/bhatti";

export function tierImageDir(tier: string): string {
  return join(TIERS_STATE_DIR, "images", tier);
}

/** Why the tier test cannot run here (printed), or undefined when it can. */
export function tierUnavailable(tier: string): string | undefined {
  const engine = gvisorFactory.unavailable();
  if (engine !== undefined) return engine;
  if (!existsSync(join(tierImageDir(tier), "image.json"))) {
    return `the ${tier} tier is not built in ${TIERS_STATE_DIR} (npm run test:tiers builds it, or images/${tier}/build.sh --state-dir ${TIERS_STATE_DIR})`;
  }
  return undefined;
}

/** Prints why a tier suite is skipped (vitest only shows "skipped"). */
export function reportSkip(tier: string): boolean {
  const why = tierUnavailable(tier);
  if (why !== undefined) console.log(`test/tiers: skipping the ${tier} tier: ${why}`);
  return why !== undefined;
}

export interface TierEnv {
  engine: Engine;
  env: GvisorTestEnv;
  create(overrides?: Partial<SandboxSpec>): Promise<SandboxInfo>;
  agent(id: string): Promise<AgentClient>;
  /** Runs `sh -c script` in the sandbox (as the user, or root); output as strings. */
  sh(id: string, script: string, options?: { root?: boolean; timeoutMs?: number }): Promise<ShResult>;
  /** A loopback TCP port on the host that reaches `port` inside the sandbox (agent forward). */
  forward(id: string, port: number): Promise<number>;
  /** Destroys every sandbox, checks nothing leaked, removes the test state. */
  dispose(): Promise<Record<string, string[]>>;
}

export interface ShResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function createTierEnv(tier: string): Promise<TierEnv> {
  const env = await createGvisorTestEnv();
  mkdirSync(join(env.stateDir, "images"), { recursive: true });
  symlinkSync(tierImageDir(tier), join(env.stateDir, "images", tier));
  const engine = createGvisorEngine(env.options);
  const servers: Server[] = [];
  const agent = async (id: string) => {
    const ep = engine.agentEndpoint(id);
    return createAgentClient({
      control: await env.options.dialer.endpoint(ep.host, ep.controlPort),
      forward: await env.options.dialer.endpoint(ep.host, ep.forwardPort),
      token: ep.token,
      pool: false,
    });
  };
  return {
    engine,
    env,
    create: (overrides = {}) => engine.create(testSpec(tier, { name: `tier-${tier}`, ...overrides })),
    agent,
    async sh(id, script, options = {}) {
      const client = await agent(id);
      try {
        const r = await client.exec(["sh", "-c", script], {
          ...(options.root === true ? { root: true } : {}),
          ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        });
        return { exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
      } finally {
        client.close();
      }
    },
    async forward(id, port) {
      const server = createServer((socket) => {
        socket.pause();
        void agent(id).then(
          async (client) => {
            try {
              const upstream = await client.forward(port);
              const done = () => {
                socket.destroy();
                upstream.destroy();
                client.close();
              };
              upstream.on("error", done).on("close", done);
              socket.on("error", done).on("close", done);
              socket.pipe(upstream).pipe(socket);
              socket.resume();
            } catch {
              socket.destroy();
              client.close();
            }
          },
          () => socket.destroy(),
        );
      });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const address = server.address();
      if (address === null || typeof address === "string") throw new Error("no port");
      return address.port;
    },
    async dispose() {
      try {
        for (const s of servers) s.close();
        for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
        const leaks = await gvisorLeaks(env);
        await engine.close();
        return leaks;
      } finally {
        await env.teardown();
      }
    },
  };
}

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes; the last error explains a timeout. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** No leak of any kind: every list empty. */
export function noLeaks(leaks: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(Object.keys(leaks).map((k) => [k, []]));
}
