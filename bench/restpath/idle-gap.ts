// REST exec `true` on a hot sandbox after an idle gap shorter and longer than the gateway's agent
// pool idle limit (spares older than 5 s are closed, so the next call dials and authenticates
// first). Gaps alternate; the gap itself is not timed.
//
//   node --conditions=source --import tsx bench/restpath/idle-gap.ts [--n 15] [--short 1000] [--long 6000]
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createAgentClient } from "@bhatti/agent-client";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { startProduct } from "@bhatti/test/thermal/product-harness";
import { percentiles } from "../foundation/stats.js";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg("--n", 15);
const SHORT = arg("--short", 1000);
const LONG = arg("--long", 6000);

const product = await startProduct({
  flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=1h"],
});
try {
  const created = await product.http("POST", "/sandboxes", {
    body: { name: "idle-gap", image: "busybox", keep_hot: true },
  });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const id = created.json<{ id: string }>().id;
  const exec = async () => {
    const t = performance.now();
    const r = await product.http("POST", `/sandboxes/${id}/exec`, { body: { cmd: ["true"] } });
    const ms = performance.now() - t;
    if (r.status !== 200 || r.json<{ exit_code: number }>().exit_code !== 0)
      throw new Error(`exec: ${r.status} ${r.text}`);
    return ms;
  };
  // The same gaps before an exec by an agent client of the bench's own, talking to the sandbox
  // directly: whatever it also pays after a gap is the sandbox's, not the gateway's.
  const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
  const ag = (await vmm.client.getSandboxStatus({ id })).sandbox?.agent;
  vmm.close();
  if (ag === undefined) throw new Error("no agent endpoint");
  const direct = createAgentClient({
    control: await product.env.options.dialer.endpoint(ag.host, ag.controlPort),
    forward: await product.env.options.dialer.endpoint(ag.host, ag.forwardPort),
    token: ag.token,
    pool: { size: 2, idleMs: 3_600_000 },
  });
  const directExec = async () => {
    const t = performance.now();
    if ((await direct.exec(["true"])).exitCode !== 0) throw new Error("direct exec failed");
    return performance.now() - t;
  };
  for (let i = 0; i < 10; i++) {
    await exec();
    await directExec();
  }
  const short: number[] = [];
  const long: number[] = [];
  const dShort: number[] = [];
  const dLong: number[] = [];
  const load0 = loadavg();
  for (let i = 0; i < N; i++) {
    await sleep(SHORT);
    short.push(await exec());
    await sleep(LONG);
    long.push(await exec());
    await sleep(SHORT);
    dShort.push(await directExec());
    await sleep(LONG);
    dLong.push(await directExec());
  }
  direct.close();
  const load1 = loadavg();
  const fmt = (s: number[]) => {
    const p = percentiles(s);
    return `p50 ${p.p50.toFixed(2)}  p95 ${p.p95.toFixed(2)} ms  n=${p.n}`;
  };
  process.stdout.write(
    `\nREST exec true after an idle gap (load ${load0[0]?.toFixed(2)} → ${load1[0]?.toFixed(2)})\n` +
      `REST   after ${SHORT} ms idle: ${fmt(short)}\nREST   after ${LONG} ms idle: ${fmt(long)}\n` +
      `direct after ${SHORT} ms idle: ${fmt(dShort)}\ndirect after ${LONG} ms idle: ${fmt(dLong)} (its spares never expire)\n`,
  );
} finally {
  await product.dispose();
}
