import { Agent, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { percentiles, report } from "../foundation/stats.js";
import { endpointPath, startWebApp } from "@bhatti/test/proxy/proxy-harness";
import { type Product, startProduct, waitForSandbox } from "@bhatti/test/thermal/product-harness";

/**
 * The proxy through the whole product (`bhatti serve`, gvisor, the test web app in the sandbox),
 * against a direct request to the same app from the host netns (the sandbox's bridge IP), in the
 * same run. Both go through the same netns relay (the harness's Unix socket into the test netns),
 * so the difference is the gateway's hop. The app listens on 0.0.0.0:3000 (the gateway dials it
 * at the sandbox's address) and on 127.0.0.1:3001 (reached through the agent's forward port):
 *   - proxied GET p50 vs direct GET p50 (keep-alive client; target: <= 1 ms overhead);
 *   - requests/s with 50 connections, proxied vs direct (target: >= 50% of direct), in alternating
 *     rounds so that a change of load hits both sides alike: the median of the rounds' ratios;
 *   - warm wake + proxied GET, cold wake + proxied GET.
 * Run as root: node --conditions=source --import tsx bench/proxy/proxy-bench.ts
 */
const SAMPLES = Number(process.env["SAMPLES"] ?? 300);
const WAKE_SAMPLES = Number(process.env["WAKE_SAMPLES"] ?? 10);
const LOAD_SECONDS = Number(process.env["LOAD_SECONDS"] ?? 3);
const LOAD_ROUNDS = Number(process.env["LOAD_ROUNDS"] ?? 5);
const CONNECTIONS = 50;
const PORT = 3000;
/** The same app on 127.0.0.1 only: the proxy reaches it through the agent's forward port. */
const LOCAL_PORT = 3001;
const PROXY_PORT = 40_000 + Math.floor(Math.random() * 20_000);

const get = (agent: Agent, socketPath: string, path: string, host: string, expect = 200) =>
  new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ socketPath, path, agent, headers: { host } }, (res) => {
      res.resume();
      res.on("end", () => {
        if (res.statusCode !== expect) reject(new Error(`GET ${host}${path}: ${res.statusCode}`));
        else resolve(performance.now() - t0);
      });
    });
    req.on("error", reject);
    req.end();
  });

/** Requests/s of CONNECTIONS closed loops for LOAD_SECONDS. */
async function throughput(socketPath: string, host: string): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const until = performance.now() + LOAD_SECONDS * 1000;
  let done = 0;
  const loop = async () => {
    while (performance.now() < until) {
      await get(agent, socketPath, "/headers", host);
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, loop));
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  return done / seconds;
}

const product: Product = await startProduct({
  flags: [
    "--thermal-warm-after=300ms",
    "--thermal-cold-after=1h",
    "--thermal-tick=50ms",
    `--proxy-listen=127.0.0.1:${PROXY_PORT}`,
    "--proxy-rate-ip-burst=10000000",
    "--proxy-rate-ip-per-minute=100000000",
    "--proxy-rate-alias-burst=10000000",
    "--proxy-rate-alias-per-minute=100000000",
  ],
});
try {
  const create = async (name: string, keepHot: boolean) => {
    const res = await product.http("POST", "/sandboxes", {
      body: { name, image: "busybox", keep_hot: keepHot },
    });
    if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.text}`);
    const sb = res.json<{ id: string; ip: string }>();
    await startWebApp(product, sb.id, [`0.0.0.0:${PORT}`, `127.0.0.1:${LOCAL_PORT}`]);
    const publish = async (port: number) => {
      const pub = await product.http("POST", `/sandboxes/${sb.id}/publish`, { body: { port } });
      if (pub.status !== 201) throw new Error(`publish ${name}: ${pub.status} ${pub.text}`);
      return pub.json<{ alias: string }>().alias;
    };
    return { ...sb, alias: await publish(PORT), localAlias: await publish(LOCAL_PORT) };
  };
  const hot = await create("bench-hot", true);
  const warm = await create("bench-warm", false);
  const cold = await create("bench-cold", false);

  const gateway = await endpointPath(product);
  const gatewayHost = (alias: string) => `${alias}.localhost:${product.port}`;
  const direct = ((await product.env.options.dialer.endpoint(hot.ip, PORT)) as { path: string }).path;

  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  const floorAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const publicListener = await endpointPath(product, PROXY_PORT);
  for (let i = 0; i < 20; i++) {
    await get(keepAlive, direct, "/headers", `${hot.ip}:${PORT}`);
    await get(keepAlive, gateway, "/headers", gatewayHost(hot.alias));
    await get(keepAlive, gateway, "/headers", gatewayHost(hot.localAlias));
  }
  const directMs: number[] = [];
  const proxiedMs: number[] = [];
  const floorMs: number[] = [];
  const viaAgentMs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    directMs.push(await get(keepAlive, direct, "/headers", `${hot.ip}:${PORT}`));
    proxiedMs.push(await get(keepAlive, gateway, "/headers", gatewayHost(hot.alias)));
    viaAgentMs.push(await get(keepAlive, gateway, "/headers", gatewayHost(hot.localAlias)));
    // The gateway alone: path mode's redirect resolves the (cached) alias and answers without the sandbox.
    floorMs.push(await get(floorAgent, publicListener, `/${hot.alias}`, `127.0.0.1:${PROXY_PORT}`, 301));
  }
  keepAlive.destroy();
  floorAgent.destroy();

  const rounds: { direct: number; proxied: number; viaAgent: number }[] = [];
  for (let round = 0; round < LOAD_ROUNDS; round++) {
    const directRps = await throughput(direct, `${hot.ip}:${PORT}`);
    const proxiedRps = await throughput(gateway, gatewayHost(hot.alias));
    const viaAgentRps = await throughput(gateway, gatewayHost(hot.localAlias));
    rounds.push({ direct: directRps, proxied: proxiedRps, viaAgent: viaAgentRps });
  }
  const median = (xs: number[]) => percentiles(xs).p50;

  const warmMs: number[] = [];
  const coldMs: number[] = [];
  const fresh = () => new Agent({ keepAlive: false });
  for (let i = 0; i < WAKE_SAMPLES; i++) {
    await waitForSandbox(product, warm.id, (s) => s.thermal === "warm", 20_000);
    warmMs.push(await get(fresh(), gateway, "/headers", gatewayHost(warm.alias)));

    const stop = await product.http("POST", `/sandboxes/${cold.id}/stop`);
    if (stop.status !== 200) throw new Error(`stop: ${stop.status} ${stop.text}`);
    coldMs.push(await get(fresh(), gateway, "/headers", gatewayHost(cold.alias)));
    await sleep(100);
  }

  const load = (await import("node:os")).loadavg().map((v) => v.toFixed(1));
  process.stdout.write(
    `bench/proxy/proxy-bench.ts: ${SAMPLES} GET samples, ${WAKE_SAMPLES} wake samples, ${CONNECTIONS} connections x ${LOAD_SECONDS} s; load avg ${load.join(" ")}\n`,
  );
  report("proxied GET vs direct (same app, same relay, keep-alive client)", "ms", [
    { name: "direct GET (baseline)", samples: directMs },
    { name: "proxied GET (domain mode)", samples: proxiedMs },
    { name: "proxied GET, app on 127.0.0.1 (agent)", samples: viaAgentMs },
    { name: "gateway floor (301, no sandbox)", samples: floorMs },
    { name: "warm wake + proxied GET", samples: warmMs },
    { name: "cold wake + proxied GET", samples: coldMs },
  ]);
  const overhead = percentiles(proxiedMs).p50 - percentiles(directMs).p50;
  process.stdout.write(
    `\nproxied GET p50 overhead: ${overhead.toFixed(2)} ms (target <= 1 ms: ${overhead <= 1 ? "met" : "missed"})\n`,
  );
  const ratio = median(rounds.map((r) => r.proxied / r.direct));
  const agentRatio = median(rounds.map((r) => r.viaAgent / r.direct));
  process.stdout.write(
    `requests/s with ${CONNECTIONS} connections, ${LOAD_ROUNDS} alternating rounds of ${LOAD_SECONDS} s (direct / proxied / app on 127.0.0.1 through the agent):\n${rounds
      .map((r) => `  ${r.direct.toFixed(0)} / ${r.proxied.toFixed(0)} / ${r.viaAgent.toFixed(0)}`)
      .join(
        "\n",
      )}\nproxied: median ${(100 * ratio).toFixed(0)}% of direct (target >= 50%: ${ratio >= 0.5 ? "met" : "missed"}); through the agent: ${(100 * agentRatio).toFixed(0)}%\n`,
  );
} finally {
  await product.dispose();
}
