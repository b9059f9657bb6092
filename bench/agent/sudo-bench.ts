// The sudo channel's cost, as uid 1000 against a real agent (as root) on a temp Unix socket:
//   sudo true   = the shim (a Node start) + socket + root spawn by the agent
//   baseline    = `node -e 0` as uid 1000: the Node start alone, the floor of any Node shim
// and, without the shim, one EXEC_REQ over the sudo socket vs spawn('true') here.
//   node --conditions=source --import tsx bench/agent/sudo-bench.ts [--n 60]
// Needs root (the agent runs as root, the shim as uid 1000).
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FrameReader, FrameType, encodeJsonFrame } from "@bhatti/agent-protocol";
import { startAgentProcess } from "@bhatti/agent/testing";

const nIndex = process.argv.indexOf("--n");
const N = nIndex > 0 ? Number(process.argv[nIndex + 1]) : 60;
const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

if (process.getuid?.() !== 0) {
  process.stderr.write("run as root: the agent must be root and the shim runs as uid 1000\n");
  process.exit(1);
}

function percentiles(samples: number[]): { p50: number; p95: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

/** Op and baseline alternately, so machine load hits both alike. */
async function pair(n: number, op: () => Promise<unknown>, base: () => Promise<unknown>) {
  for (let i = 0; i < 5; i++) {
    await op();
    await base();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    for (const [fn, out] of [
      [op, a],
      [base, b],
    ] as const) {
      const t0 = process.hrtime.bigint();
      await fn();
      out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  return [percentiles(a), percentiles(b)] as const;
}

function run(file: string, args: string[], env: Record<string, string>, uid?: number): Promise<void> {
  const child = spawn(file, args, {
    stdio: "ignore",
    env,
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  return once(child, "close").then(([code]) => {
    if (code !== 0) throw new Error(`${file} ${args.join(" ")} exited ${code}`);
  });
}

async function rawSudoExec(socketPath: string): Promise<void> {
  const socket = connect({ path: socketPath, allowHalfOpen: true });
  await once(socket, "connect");
  const reader = new FrameReader(socket);
  socket.end(encodeJsonFrame(FrameType.EXEC_REQ, { argv: ["true"], cwd: "/" }));
  for (let f = await reader.read(); f !== null; f = await reader.read()) if (f.type === FrameType.EXIT) break;
  socket.destroy();
}

const work = mkdtempSync(join(tmpdir(), "bhatti-bench-sudo-"));
chmodSync(work, 0o755);
execFileSync(process.execPath, [join(root, "agent/scripts/build-sudo-shim.mjs"), "--out", join(work, "pkg")]);
chmodSync(join(work, "pkg"), 0o755);
const socketPath = join(work, "run/sudo.sock");
const agent = await startAgentProcess({ user: "1000", sudoSocket: socketPath });
try {
  const env = { PATH: "/usr/bin:/bin", BHATTI_SUDO_SOCKET: socketPath };
  const nodeFlags = ["--max-semi-space-size=1", "--max-old-space-size=64"];
  const [sudo, nodeStart] = await pair(
    N,
    () => run(process.execPath, [...nodeFlags, join(work, "pkg/sudo.mjs"), "true"], env, 1000),
    () => run(process.execPath, [...nodeFlags, "-e", "0"], env, 1000),
  );
  const [channel, spawnTrue] = await pair(
    N * 3,
    () => rawSudoExec(socketPath),
    () => run("true", [], env),
  );
  const row = (name: string, s: typeof sudo, b: typeof sudo, note: string) =>
    `${name.padEnd(34)} ${s.p50.toFixed(2).padStart(7)} ${s.p95.toFixed(2).padStart(7)} ${s.p99.toFixed(2).padStart(7)} ${b.p50.toFixed(2).padStart(9)} ${(s.p50 / b.p50).toFixed(2).padStart(6)}x  ${note}`;
  process.stdout.write(
    `n=${N}  node ${process.version}\n${"benchmark (ms)".padEnd(34)} ${"p50".padStart(7)} ${"p95".padStart(7)} ${"p99".padStart(7)} ${"base p50".padStart(9)} ${"ratio".padStart(7)}  baseline\n` +
      `${row("sudo true (shim, uid 1000)", sudo, nodeStart, "node -e 0 as uid 1000")}\n` +
      `${row("sudo socket EXEC_REQ true", channel, spawnTrue, "spawn('true') here")}\n`,
  );
} finally {
  await agent.stop();
  rmSync(work, { recursive: true, force: true });
}
