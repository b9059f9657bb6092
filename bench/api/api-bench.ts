// Gateway API benchmarks against the whole product (`bhatti serve`, gvisor, busybox image) in a
// stand-in netns. Both paths reach the netns through the same relay, so the difference between
// "REST" and "agent client directly" is the gateway's own cost (auth, routing, wake check).
//
//   node --conditions=source --import tsx bench/api/api-bench.ts [--n 200]
import { execFile } from "node:child_process";
import { Agent } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createAgentClient } from "@bhatti/agent-client";
import { StoreService, VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { startProduct } from "@bhatti/test/thermal/product-harness";
import { createRestCall, expectStatus } from "../foundation/rest-client.js";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg("n", 200);
const bhattiBin = join(fileURLToPath(new URL("../..", import.meta.url)), "cli/dist/bhatti.mjs");

const pct = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
const stats = (samples: number[]) => {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 0.5), p95: pct(s, 0.95), p99: pct(s, 0.99) };
};
const rows: string[] = [];
function report(name: string, samples: number[], baseline?: number[]): void {
  const s = stats(samples);
  let line = `${name.padEnd(44)} n=${String(s.n).padStart(4)}  p50 ${s.p50.toFixed(3)} ms  p95 ${s.p95.toFixed(3)} ms  p99 ${s.p99.toFixed(3)} ms`;
  if (baseline !== undefined) {
    const b = stats(baseline);
    line += `  | vs baseline p50 ${b.p50.toFixed(3)} ms: x${(s.p50 / b.p50).toFixed(2)}, +${(s.p50 - b.p50).toFixed(3)} ms`;
  }
  rows.push(line);
  process.stdout.write(`${line}\n`);
}

const product = await startProduct({ flags: ["--log-level=warn", "--thermal-warm-after=1h"] });
try {
  const ep = await product.env.options.dialer.endpoint("127.0.0.1", product.port);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  // The harness user has high create/exec limits, so no timed call meets the rate limiter.
  const key = product.userKey;
  const call = createRestCall({ endpoint: ep, agent, key });
  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };

  const created = await call("POST", "/sandboxes", JSON.stringify({ name: "bench" }), {
    "content-type": "application/json",
  });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.body.toString()}`);
  const id = (JSON.parse(created.body.toString()) as { id: string }).id;

  // The agent endpoint as the vmm hands it to the gateway.
  const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
  const status = await vmm.client.getSandboxStatus({ id });
  const ag = status.sandbox?.agent;
  if (ag === undefined) throw new Error("no agent endpoint");
  const direct = createAgentClient({
    control: await product.env.options.dialer.endpoint(ag.host, ag.controlPort),
    forward: await product.env.options.dialer.endpoint(ag.host, ag.forwardPort),
    token: ag.token,
  });

  const ok = (p: ReturnType<typeof call>) => expectStatus(p);
  // Reads are limited per user to a burst of 60 and 1200/min (v1): pace them, untimed, like v1's bench.
  const paceReads = () => new Promise((r) => setTimeout(r, 55));
  const execBody = JSON.stringify({ cmd: ["true"] });
  const restExec = () =>
    ok(call("POST", `/sandboxes/${id}/exec`, execBody, { "content-type": "application/json" }));
  for (let i = 0; i < 20; i++) {
    await restExec();
    await direct.exec(["true"]);
  }
  const rest: number[] = [];
  const viaAgent: number[] = [];
  for (let i = 0; i < N; i++) {
    // Interleaved, so both see the same machine load.
    rest.push(await time(restExec));
    viaAgent.push(await time(() => direct.exec(["true"])));
  }
  report("exec true: agent client directly (baseline)", viaAgent);
  report("exec true: REST POST /exec", rest, viaAgent);

  const kib = Buffer.alloc(1024, "x");
  const writes: number[] = [];
  const reads: number[] = [];
  const directWrites: number[] = [];
  for (let i = 0; i < Math.min(N, 100); i++) {
    writes.push(await time(() => ok(call("PUT", `/sandboxes/${id}/files?path=/tmp/bench.bin`, kib))));
    reads.push(await time(() => ok(call("GET", `/sandboxes/${id}/files?path=/tmp/bench.bin`))));
    directWrites.push(await time(() => direct.writeFile("/tmp/bench2.bin", kib)));
    await paceReads();
  }
  report("file write 1 KiB: agent client directly", directWrites);
  report("file write 1 KiB: REST PUT", writes, directWrites);
  report("file read 1 KiB: REST GET", reads, directWrites);

  const batches: number[] = [];
  for (let i = 0; i < 20; i++)
    batches.push(await time(() => Promise.all(Array.from({ length: 10 }, restExec))));
  report("10 concurrent REST execs (batch wall time)", batches, rest);

  // 100 sandbox rows for the list (booting 100 gvisor sandboxes would not fit a 2-core box):
  // rows created through the store as the create path does, 99 of them without an engine.
  const store = createServiceClient(StoreService, join(product.socketDir, "store.sock"));
  const me = await store.client.authenticateApiKey({ apiKey: key });
  const userId = me.user?.id ?? "";
  const admin = await store.client.authenticateApiKey({ apiKey: product.adminKey });
  await store.client.updateUserLimits({
    actingUserId: admin.user?.id ?? "",
    user: userId,
    limits: { maxSandboxes: 200 },
  });
  for (let i = 0; i < 99; i++) {
    await store.client.createSandbox({ userId, name: `list-${i}`, image: "busybox", status: "stopped" });
  }
  const lists: number[] = [];
  for (let i = 0; i < 50; i++) {
    lists.push(
      await time(async () => {
        const r = await ok(call("GET", "/sandboxes"));
        if ((JSON.parse(r.body.toString()) as unknown[]).length !== 100)
          throw new Error("expected 100 sandboxes");
      }),
    );
    await paceReads();
  }
  const health: number[] = [];
  for (let i = 0; i < 50; i++) health.push(await time(() => call("GET", "/health")));
  report("GET /health (floor: relay + HTTP)", health);
  report("GET /sandboxes with 100 sandboxes", lists, health);

  const cli = (args: string[]) =>
    new Promise<void>((resolve, reject) =>
      execFile(
        "nsenter",
        [`--net=${product.env.hostNetnsPath}`, "--", process.execPath, bhattiBin, ...args],
        { env: { ...process.env, BHATTI_CLIENT_CONFIG: join(product.env.stateDir, "client-user.yaml") } },
        (e) => (e === null ? resolve() : reject(e)),
      ),
    );
  const cliVersion: number[] = [];
  const cliExec: number[] = [];
  for (let i = 0; i < 20; i++) {
    cliVersion.push(await time(() => cli(["version", "--offline"])));
    cliExec.push(await time(() => cli(["exec", "-n", "bench", "--", "true"])));
  }
  report("CLI: bhatti version --offline (process start floor)", cliVersion);
  report("CLI: bhatti exec bench -- true (end to end)", cliExec, cliVersion);

  direct.close();
  vmm.close();
  store.close();
  agent.destroy();
  for (let i = 0; i < 99; i++)
    await store.client.deleteSandbox({ userId, sandbox: `list-${i}` }).catch(() => {});
} finally {
  await product.dispose();
}
process.stdout.write(`\n${rows.join("\n")}\n`);
