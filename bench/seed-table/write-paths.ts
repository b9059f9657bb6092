// The gateway writes a REST upload to the agent as a stream (FILE_WRITE_REQ, then the body as it
// arrives); the agent client also takes a whole buffer (both frames in one tick, with the
// stale-spare retry). This times both for 1 KiB, interleaved, on one gvisor sandbox, to decide
// whether small REST uploads should be buffered first.
//
//   node --conditions=source --import tsx bench/seed-table/write-paths.ts [--n 100]
import { setImmediate as tick } from "node:timers/promises";
import { createAgentClient } from "@bhatti/agent-client";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";
import { report } from "../foundation/stats.js";

const i = process.argv.indexOf("--n");
const N = i >= 0 ? Number(process.argv[i + 1]) : 100;
const env = await createGvisorTestEnv();
const engine = createGvisorEngine(env.options);
try {
  const sb = await engine.create(testSpec("busybox", { name: "bench-write" }));
  const ep = engine.agentEndpoint(sb.id);
  const agent = createAgentClient({
    control: await env.options.dialer.endpoint(ep.host, ep.controlPort),
    forward: await env.options.dialer.endpoint(ep.host, ep.forwardPort),
    token: ep.token,
  });
  const kib = Buffer.alloc(1024, "x");
  // As an http.IncomingMessage delivers a small body: one chunk, after the request was routed.
  async function* body() {
    await tick();
    yield kib;
  }
  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const bytes: number[] = [];
  const stream: number[] = [];
  for (let k = 0; k < 20; k++) {
    await agent.writeFile("/tmp/a.bin", kib);
    await agent.writeFileStream("/tmp/b.bin", body(), kib.byteLength);
  }
  for (let k = 0; k < N; k++) {
    bytes.push(await time(() => agent.writeFile("/tmp/a.bin", kib)));
    stream.push(await time(() => agent.writeFileStream("/tmp/b.bin", body(), kib.byteLength)));
  }
  report(`1 KiB write to the agent (gvisor ${env.options.platform}, pooled client, n=${N})`, "ms", [
    { name: "whole buffer (writeFile)", samples: bytes },
    { name: "stream (writeFileStream), as REST", samples: stream },
  ]);
  agent.close();
  await engine.destroy(sb.id);
} finally {
  for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
  await env.teardown();
}
