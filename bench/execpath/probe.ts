// Where an agent-direct exec's time goes, measured from inside the stand-in host netns (no relay):
// TCP echo round trip into the sandbox (a static C echo server: the network's own cost),
// agent stat (the agent's request round trip), agent exec true, and the in-sandbox floor.
//   node --conditions=source --import tsx bench/execpath/probe.ts [--n 200]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createAgentClient } from "@bhatti/agent-client";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";

const N = Number(process.argv[process.argv.indexOf("--n") + 1] || 200);
const env = await createGvisorTestEnv();
const engine = createGvisorEngine(env.options);
try {
  const sb = await engine.create(testSpec("busybox", { name: "bench-execpath", memoryMb: 1024 }));
  const ep = engine.agentEndpoint(sb.id);
  const client = createAgentClient({
    control: await env.options.dialer.endpoint(ep.host, ep.controlPort),
    forward: await env.options.dialer.endpoint(ep.host, ep.forwardPort),
    token: ep.token,
  });
  await client.writeFile("/tmp/echo", readFileSync("/tmp/bhatti-echo"));
  await client.exec(["chmod", "755", "/tmp/echo"], { root: true });
  await client.execDetached(["/tmp/echo", "7200"], { root: true });
  const worker = spawn(
    "nsenter",
    [`--net=${env.hostNetnsPath}`, "--", process.execPath, "--conditions=source", "--import", "tsx",
      fileURLToPath(new URL(process.env["WORKER"] ?? "./probe-worker.ts", import.meta.url)),
      JSON.stringify({ host: ep.host, control: ep.controlPort, forward: ep.forwardPort, token: ep.token, n: N })],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  await new Promise((r) => worker.once("exit", r));
  client.close?.();
} finally {
  await engine.close?.();
  await env.teardown();
}
