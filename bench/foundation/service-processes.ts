// Start-up time and idle RSS of every service process. By default with the Node that runs this
// file and this checkout's bundles; BENCH_TARGETS="label=node:root,…" compares several (e.g.
// node 20 with a checkout built for it against node 24 with this one), alternating run by run so
// every target sees the same machine load. Each process is spawned the way
// `bhatti serve` spawns it (same flags, same start order, its dependencies already up) inside a
// stand-in host netns with test names; start-up is spawn until its Health answers (the gateway:
// GET /health), idle RSS is VmRSS once all five are up and have been left alone for a second.
// Run after `npm run build`:
//   node --conditions=source --import tsx bench/foundation/service-processes.ts
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { NetworkService, StoreService, ThermalService, VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import type { GuestInit } from "@bhatti/service-vmm/adapters";
import { RUNSC_PATH, createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";
import { percentiles } from "./stats.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
interface Target {
  label: string;
  node: string;
  root: string;
}
const targets: Target[] = (process.env["BENCH_TARGETS"] ?? `${process.version}=${process.execPath}:${root}`)
  .split(",")
  .map((t) => {
    const [label, rest] = t.split("=") as [string, string];
    const [node, dir] = rest.split(":") as [string, string];
    return { label, node, root: dir };
  });
const runs = Number(process.env["BENCH_RUNS"] ?? 5);
const TIERS = [["store"], ["network"], ["vmm"], ["thermal", "gateway"]] as const;
type Name = (typeof TIERS)[number][number];
const SCRIPT: Record<Name, string> = {
  store: "services/store/dist/main.js",
  network: "services/network/dist/main.js",
  vmm: "services/vmm/dist/main.js",
  thermal: "services/thermal/dist/main.js",
  gateway: "gateway/dist/main.js",
};
const SERVICES = { store: StoreService, network: NetworkService, vmm: VmmService, thermal: ThermalService };

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m?.[1] === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) return ok();
    child.once("exit", () => ok());
    child.kill("SIGTERM");
  });
}

const env = await createGvisorTestEnv();
const empty = (): Record<Name, number[]> => ({ store: [], network: [], vmm: [], thermal: [], gateway: [] });
const startupOf = new Map(targets.map((t) => [t.label, empty()]));
const rssOf = new Map(targets.map((t) => [t.label, empty()]));
try {
  const init = env.options.init as Extract<GuestInit, { kind: "agent" }>;
  const hostNetns = env.hostNetnsPath.split("/").pop() as string;
  writeFileSync(join(env.stateDir, "config.yaml"), "");
  for (let i = 0; i < runs * targets.length; i++) {
    const run = i;
    const target = targets[i % targets.length] as Target;
    const startup = startupOf.get(target.label) as Record<Name, number[]>;
    const rss = rssOf.get(target.label) as Record<Name, number[]>;
    const socketDir = join(env.stateDir, `s${run}`);
    const stateDir = join(env.stateDir, `state${run}`);
    const port = 18_000 + Math.floor(Math.random() * 20_000);
    const args = [
      "--config=/dev/null",
      `--socket-dir=${socketDir}`,
      `--state-dir=${stateDir}`,
      `--listen=127.0.0.1:${port}`,
      `--client-config-file=${join(stateDir, "client.yaml")}`,
      `--runsc-path=${RUNSC_PATH}`,
      `--runsc-platform=${env.options.platform}`,
      `--agent-package-dir=${init.packageDir}`,
      `--cgroup-parent=${env.options.cgroupParent}`,
      "--default-image=busybox",
      `--vmm-local-network=netns=${hostNetns},bridge=btbr${env.runId},subnet=10.252.${Number.parseInt(env.runId.slice(0, 2), 16)}`,
      "--log-level=warn",
    ];
    const children = new Map<Name, ChildProcess>();
    const clients: { close(): void }[] = [];
    const gatewayUp = async (): Promise<boolean> => {
      const ep = (await env.options.dialer.endpoint("127.0.0.1", port)) as { path: string };
      return new Promise((resolve) => {
        const req = request({ socketPath: ep.path, path: "/health", timeout: 1000 }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        });
        req.on("error", () => resolve(false));
        req.on("timeout", () => req.destroy());
        req.end();
      });
    };
    const startOne = async (name: Name): Promise<void> => {
      const t = process.hrtime.bigint();
      const child = spawn(
        "nsenter",
        [`--net=${env.hostNetnsPath}`, "--", target.node, join(target.root, SCRIPT[name]), ...args],
        {
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      children.set(name, child);
      let stderr = "";
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      const client =
        name === "gateway" ? undefined : createServiceClient(SERVICES[name], join(socketDir, `${name}.sock`));
      if (client !== undefined) clients.push(client);
      for (;;) {
        if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${stderr}`);
        const up =
          client === undefined
            ? await gatewayUp()
            : await client.client.health({}, { timeoutMs: 1000 }).then(
                () => true,
                () => false,
              );
        if (up) break;
        await sleep(5);
      }
      startup[name].push(Number(process.hrtime.bigint() - t) / 1e6);
    };
    try {
      for (const tier of TIERS) await Promise.all(tier.map((n) => startOne(n)));
      await sleep(1000);
      for (const [name, child] of children) {
        // nsenter execs node, so the child's pid is the node process.
        rss[name].push(rssKiB(child.pid as number) / 1024);
      }
    } finally {
      for (const c of clients) c.close();
      for (const tier of [...TIERS].reverse()) {
        await Promise.all(
          tier.flatMap((n) => (children.has(n) ? [stop(children.get(n) as ChildProcess)] : [])),
        );
      }
    }
  }
} finally {
  await env.teardown();
}

for (const target of targets) {
  const startup = startupOf.get(target.label) as Record<Name, number[]>;
  const rss = rssOf.get(target.label) as Record<Name, number[]>;
  process.stdout.write(
    `\nService processes, ${target.label} (${target.node}, ${target.root}; ${runs} runs)\n`,
  );
  process.stdout.write(
    `${"".padEnd(10)}${"start p50 ms".padStart(14)}${"p95".padStart(8)}${"idle RSS p50 MiB".padStart(18)}${"max".padStart(8)}\n`,
  );
  for (const tier of TIERS) {
    for (const name of tier) {
      const s = percentiles(startup[name]);
      const r = percentiles(rss[name]);
      process.stdout.write(
        `${name.padEnd(10)}${s.p50.toFixed(1).padStart(14)}${s.p95.toFixed(1).padStart(8)}${r.p50.toFixed(1).padStart(18)}${Math.max(
          ...rss[name],
        )
          .toFixed(1)
          .padStart(8)}\n`,
      );
    }
  }
}
