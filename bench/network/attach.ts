// Attach/detach of one sandbox through the real network service (inside a stand-in host
// netns, with the real store), against a baseline measured in the same run: a bare netns +
// veth pair made by one batched `ip` call (no address, bridge, firewall or store). Then 100
// sandboxes attached at once (one user, then ten users): wall time, nft rules and elements.
//
//   node --conditions=source --import tsx bench/network/attach.ts [iterations]
import { dirname } from "node:path";
import { AttachmentKind } from "@bhatti/proto";
import { removeTestDir, startStoreProcess } from "@bhatti/service-store/testing";
import {
  type NetworkProcess,
  WAN,
  createTopology,
  randomSandboxId,
  removeDir,
  run,
  startNetworkProcess,
} from "@bhatti/test/network/harness";
import { percentiles, report } from "../foundation/stats.js";

const iterations = Number(process.argv[2] ?? 40);
const now = () => performance.now();

const topology = await createTopology({});
const store = await startStoreProcess();
const usedIds = new Set<string>();
let network: NetworkProcess | undefined;

async function nftCounts(): Promise<{ rules: number; elements: number }> {
  let rules = 0;
  let elements = 0;
  for (const family of ["inet", "bridge"]) {
    const out = await run("ip", [
      "netns",
      "exec",
      topology.host,
      "nft",
      "-j",
      "list",
      "table",
      family,
      "bhatti",
    ]);
    const doc = JSON.parse(out.stdout) as { nftables: Record<string, { elem?: unknown[] }>[] };
    for (const item of doc.nftables) {
      if ("rule" in item) rules++;
      elements += item["set"]?.elem?.length ?? 0;
    }
  }
  return { rules, elements };
}

try {
  network = await startNetworkProcess({
    hostNetns: topology.host,
    socketDir: dirname(store.socketPath),
    pool: "10.230.0.0/16",
    upstreams: [WAN.server],
  });
  const client = network.client;
  const attach = (userId: string, name: string) => {
    const sandboxId = randomSandboxId();
    usedIds.add(sandboxId);
    return client.attachSandbox({ sandboxId, userId, sandboxName: name, kind: AttachmentKind.NETNS });
  };

  // Warm-up: the user's bridge and resolver exist before we measure single attaches.
  const anchor = await attach("bench-user", "anchor");
  // The fixed cost of one call to the service (Connect over its Unix socket), for reference.
  const healthMs: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = now();
    await client.health({});
    healthMs.push(now() - t);
  }
  const baselineAttach: number[] = [];
  const baselineDetach: number[] = [];
  const attachMs: number[] = [];
  const detachMs: number[] = [];
  for (let i = 0; i < iterations; i++) {
    // Baseline: what a minimal netns + veth costs from this process, in one ip batch.
    const id = randomSandboxId();
    let t = now();
    const r = await runBatch(
      `netns add bhatti-${id}\nlink add bhv${id.slice(0, 10)} type veth peer name eth0 netns bhatti-${id}\n`,
    );
    baselineAttach.push(now() - t);
    if (r !== 0) throw new Error("baseline attach failed");
    t = now();
    await runBatch(`link del bhv${id.slice(0, 10)}\nnetns del bhatti-${id}\n`);
    baselineDetach.push(now() - t);

    t = now();
    const res = await attach("bench-user", `s${i}`);
    attachMs.push(now() - t);
    t = now();
    await client.detachSandbox({ sandboxId: res.network?.sandboxId ?? "" });
    detachMs.push(now() - t);
  }
  const singleLog = network.output();
  report("attach one sandbox (bridge exists)", "ms", [
    { name: "baseline: netns+veth, 1 ip batch", samples: baselineAttach },
    { name: "AttachSandbox RPC", samples: attachMs },
    { name: "Health RPC (call overhead)", samples: healthMs },
  ]);
  report("detach one sandbox", "ms", [
    { name: "baseline: veth del+netns del", samples: baselineDetach },
    { name: "DetachSandbox RPC", samples: detachMs },
  ]);

  const before = await nftCounts();
  for (const users of [1, 10]) {
    let t = now();
    const nets = await Promise.all(
      Array.from({ length: 100 }, (_, i) => attach(`burst-${users}-${i % users}`, `b${i}`)),
    );
    const attachAll = now() - t;
    const during = await nftCounts();
    t = now();
    await Promise.all(nets.map((n) => client.detachSandbox({ sandboxId: n.network?.sandboxId ?? "" })));
    const detachAll = now() - t;
    process.stdout.write(
      `\n100 sandboxes at once over ${users} user(s): attach ${attachAll.toFixed(0)} ms, detach ${detachAll.toFixed(0)} ms; ` +
        `nft rules ${before.rules} -> ${during.rules}, set elements ${before.elements} -> ${during.elements}\n`,
    );
  }
  await client.detachSandbox({ sandboxId: anchor.network?.sandboxId ?? "" });
  // The service logs when each phase of an attach finished (ms since the attach began).
  const phases = new Map<string, number[]>();
  for (const line of singleLog.split("\n")) {
    if (!line.includes('"msg":"attached"')) continue;
    for (const [k, v] of Object.entries(JSON.parse(line) as Record<string, unknown>)) {
      if (k.endsWith("_ms") && typeof v === "number") phases.set(k, [...(phases.get(k) ?? []), v]);
    }
  }
  process.stdout.write("\nsingle attach, when each phase finished (ms after the attach began):\n");
  for (const [k, v] of phases) process.stdout.write(`  ${k}: p50 ${percentiles(v).p50.toFixed(1)}\n`);
  const p = percentiles(attachMs);
  process.stdout.write(`\nattach p50 ${p.p50.toFixed(1)} ms (target <= 15 ms)\n`);
} finally {
  await network?.stop();
  await store.stop();
  removeTestDir(store.stateDir);
  await topology.destroy(usedIds);
  if (network !== undefined) removeDir(network.stateDir);
}

async function runBatch(script: string): Promise<number> {
  const { spawn } = await import("node:child_process");
  return new Promise((resolve) => {
    const child = spawn("nsenter", [`--net=/run/netns/${topology.host}`, "ip", "-b", "-"], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    child.on("close", (code) => resolve(code ?? 1));
    child.stdin.end(script);
  });
}
