import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { NetworkService } from "@bhatti/proto";
import { type ServiceClient, createServiceClient } from "@bhatti/runtime";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
export const fixtures = join(here, "fixtures");
const networkBundle = join(root, "services/network/dist/main.js");

/** Addresses of the stand-in internet (TEST-NET-2, like platform.md §B3). */
export const WAN = {
  server: "198.51.100.1",
  other: "198.51.100.3",
  hostSide: "198.51.100.2",
  metadata: "169.254.169.254",
} as const;

export interface CommandOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(file: string, args: readonly string[], timeoutMs = 10_000): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function mustRun(file: string, args: readonly string[]): Promise<string> {
  const r = await run(file, args);
  if (r.code !== 0) throw new Error(`${file} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** Runs a client command inside a netns (`ip netns exec` is fine for plain clients). */
export const inNetns = (netns: string, args: readonly string[], timeoutMs?: number) =>
  run("ip", ["netns", "exec", netns, ...args], timeoutMs);

export const randomSandboxId = (): string => randomBytes(8).toString("hex");

/**
 * Probes wait `waitSeconds` for an answer: generous by default so a loaded machine does not
 * fail a check that should pass; checks that expect a drop pass 1 (a drop never answers).
 */
export const BLOCKED_WAIT = 1;

/** One ICMP echo; true if answered. */
export async function ping(fromNetns: string, address: string, waitSeconds = 3): Promise<boolean> {
  return (await inNetns(fromNetns, ["ping", "-c", "1", "-W", String(waitSeconds), address])).code === 0;
}

/** An HTTP GET with a short timeout; the body, or undefined if it failed. */
export async function httpGet(fromNetns: string, url: string, waitSeconds = 3): Promise<string | undefined> {
  const r = await inNetns(fromNetns, ["curl", "-s", "--max-time", String(waitSeconds), url]);
  return r.code === 0 ? r.stdout : undefined;
}

/** A plain TCP connect (nc -z); true if it connected. */
export async function tcpConnects(
  fromNetns: string,
  address: string,
  port: number,
  waitSeconds = 3,
): Promise<boolean> {
  return (
    (await inNetns(fromNetns, ["nc", "-z", "-w", String(waitSeconds), address, String(port)])).code === 0
  );
}

export interface DnsAnswer {
  rcode?: number;
  answers?: { type: number; ttl: number; value: string }[];
  timeout?: boolean;
}

export async function dnsQuery(
  fromNetns: string,
  server: string,
  name: string,
  type: "A" | "AAAA" | "PTR" = "A",
  transport: "udp" | "tcp" = "udp",
): Promise<DnsAnswer> {
  const r = await inNetns(fromNetns, [
    process.execPath,
    join(fixtures, "dns-query.mjs"),
    server,
    name,
    type,
    transport,
  ]);
  return JSON.parse(r.stdout) as DnsAnswer;
}

/** A long-running process inside a netns, started with nsenter (no /sys remount). */
export interface NetnsProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export async function startInNetns(
  netns: string,
  args: readonly string[],
  readyText?: string,
  env?: Record<string, string>,
): Promise<NetnsProcess> {
  const child = spawn("nsenter", [`--net=/run/netns/${netns}`, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  if (readyText !== undefined) {
    const deadline = Date.now() + 10_000;
    while (!output.includes(readyText)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`${args.join(" ")} did not start: ${output}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * The test's stand-in host and internet: netns `bt-host-<s>` (where the network service
 * runs) and `bt-wan-<s>` joined by a veth, with the internet's HTTP + DNS servers running.
 */
export interface Topology {
  host: string;
  wan: string;
  internet: NetnsProcess;
  destroy(sandboxIds: Iterable<string>): Promise<void>;
}

export async function createTopology(dnsNames: Record<string, string>): Promise<Topology> {
  const suffix = randomBytes(3).toString("hex");
  const host = `bt-host-${suffix}`;
  const wan = `bt-wan-${suffix}`;
  const steps: [string, string[]][] = [
    ["ip", ["netns", "add", host]],
    ["ip", ["netns", "add", wan]],
    ["ip", ["-n", host, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", wan]],
    ["ip", ["-n", host, "link", "set", "lo", "up"]],
    ["ip", ["-n", host, "addr", "add", `${WAN.hostSide}/24`, "dev", "wan0"]],
    ["ip", ["-n", host, "link", "set", "wan0", "up"]],
    ["ip", ["-n", host, "route", "add", "default", "via", WAN.server]],
    ["ip", ["-n", host, "route", "add", `${WAN.metadata}/32`, "via", WAN.server]],
    ["ip", ["-n", wan, "link", "set", "lo", "up"]],
    ["ip", ["-n", wan, "addr", "add", `${WAN.server}/24`, "dev", "eth0"]],
    ["ip", ["-n", wan, "addr", "add", `${WAN.other}/24`, "dev", "eth0"]],
    ["ip", ["-n", wan, "addr", "add", `${WAN.metadata}/32`, "dev", "lo"]],
    ["ip", ["-n", wan, "link", "set", "eth0", "up"]],
  ];
  const destroyNamespaces = async () => {
    await run("ip", ["-n", host, "link", "del", "wan0"]);
    await run("ip", ["netns", "del", host]);
    await run("ip", ["netns", "del", wan]);
  };
  let internet: NetnsProcess;
  try {
    for (const [file, args] of steps) await mustRun(file, args);
    internet = await startInNetns(
      wan,
      [process.execPath, join(fixtures, "internet.mjs"), "80", "--dns", WAN.server, JSON.stringify(dnsNames)],
      "ready",
    );
  } catch (e) {
    await destroyNamespaces();
    throw e;
  }
  return {
    host,
    wan,
    internet,
    async destroy(sandboxIds) {
      await internet.stop();
      await removeProductDevices(host, sandboxIds);
      await destroyNamespaces();
    },
  };
}

/**
 * Deletes what the product may have left for these sandboxes: host-side veths/TAPs and
 * bridges in the stand-in host netns (explicitly, so nothing lingers), and their netns.
 */
export async function removeProductDevices(hostNetns: string, sandboxIds: Iterable<string>): Promise<void> {
  const links = await run("ip", ["-n", hostNetns, "-j", "link", "show"]);
  const names =
    links.code === 0 ? (JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname) : [];
  for (const name of names) {
    if (/^(bhv|bhtap)[0-9a-f]{10}$/.test(name)) await run("ip", ["-n", hostNetns, "link", "del", name]);
  }
  for (const name of names) {
    if (/^bhbr\d+$/.test(name)) await run("ip", ["-n", hostNetns, "link", "del", name]);
  }
  for (const id of sandboxIds) {
    if (existsSync(`/run/netns/bt-${id}`)) await run("ip", ["netns", "del", `bt-${id}`]);
  }
}

export async function hostLinks(hostNetns: string): Promise<string[]> {
  const out = await mustRun("ip", ["-n", hostNetns, "-j", "link", "show"]);
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname);
}

export interface NetworkProcess {
  client: ServiceClient<typeof NetworkService>["client"];
  stateDir: string;
  /** The service's pid (nsenter execs it, so it is the child's). */
  pid: number | undefined;
  /** Resolves when the process has exited (a crash point, a kill or a stop). */
  exited: Promise<void>;
  output(): string;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export interface StartNetworkOptions {
  hostNetns: string;
  socketDir: string;
  stateDir?: string;
  pool: string;
  upstreams: readonly string[];
  /** Extra environment, e.g. BHATTI_CRASH_AT. */
  env?: Record<string, string>;
}

/** The real network bundle, inside the stand-in host netns, talking to the real store. */
export async function startNetworkProcess(options: StartNetworkOptions): Promise<NetworkProcess> {
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "bhatti-test-network-"));
  const configFile = join(stateDir, "config.yaml");
  writeFileSync(configFile, "");
  const proc = await startInNetns(
    options.hostNetns,
    [
      process.execPath,
      networkBundle,
      `--config=${configFile}`,
      `--state-dir=${stateDir}`,
      `--socket-dir=${options.socketDir}`,
      `--network-pool=${options.pool}`,
      // Sandbox netns live in the shared /run/netns: test names (`bt-<id>`), never the product's.
      "--network-netns-prefix=bt-",
      `--dns-upstreams=${options.upstreams.join(",")}`,
      "--log-level=debug",
    ],
    undefined,
    options.env,
  );
  const exited = new Promise<void>((resolve) => {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) resolve();
    else proc.child.once("exit", () => resolve());
  });
  const { client, close } = createServiceClient(NetworkService, join(options.socketDir, "network.sock"), {
    defaultTimeoutMs: 15_000,
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.child.exitCode !== null) {
      close();
      throw new Error(`network service exited: ${proc.output()}`);
    }
    const health = await client.health({}, { timeoutMs: 1000 }).catch(() => undefined);
    if (health?.health?.ready) break;
    if (Date.now() > deadline) {
      close();
      await proc.stop();
      throw new Error(`network service not ready: ${proc.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    client,
    stateDir,
    pid: proc.child.pid,
    exited,
    output: proc.output,
    async stop() {
      close();
      await proc.stop();
    },
    async kill() {
      close();
      proc.child.kill("SIGKILL");
      await proc.stop();
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
