// The resident spawner at its real boundary: the bundled agent as a real process with the
// real static spawner beside it (agent/dist/spawner), beside a second agent that forks Node
// for every command (BHATTI_AGENT_SPAWNER=off). Both must answer every request the same way.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type AgentClient, AgentError, type ExecEvent, createAgentClient } from "@bhatti/agent-client";
import { FrameType, encodeSignalPayload } from "@bhatti/agent-protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgentProcess } from "../testing/agent-process.js";
import { rawConnect } from "../testing/raw-connection.js";
import { ROOT_IDENTITY } from "../identity.js";
import type { AgentLogger } from "../logger.js";
import { ResidentSpawner, SPAWNER_LOST_TEXT } from "./resident-spawner.js";

const SPAWNER_BINARY = join(import.meta.dirname, "../../dist/spawner");

let spawned: AgentProcess;
let forked: AgentProcess;
let viaSpawner: AgentClient;
let viaNode: AgentClient;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor<T>(check: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Pids the agent logged as READY spawners, oldest first. */
function readySpawners(agent: AgentProcess): number[] {
  return agent.logs
    .map((line) => {
      try {
        return JSON.parse(line) as { msg?: string; pid?: number };
      } catch {
        return {};
      }
    })
    .filter((l) => l.msg === "spawner ready" && typeof l.pid === "number")
    .map((l) => l.pid!);
}

/** The agent's current spawner: the last one it logged READY, once alive (and not `previous`). */
function currentSpawner(agent: AgentProcess, previous?: number): Promise<number> {
  return waitFor(() => {
    const pid = readySpawners(agent).at(-1);
    return pid !== undefined && pid !== previous && alive(pid) ? pid : undefined;
  });
}

/** What an exec produced, or the agent's error text: comparable across both agents. */
async function outcome(
  client: AgentClient,
  argv: string[],
  options: Parameters<AgentClient["exec"]>[1] = {},
) {
  try {
    const r = await client.exec(argv, options);
    return { exit: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  } catch (err) {
    if (err instanceof AgentError) return { error: err.agentMessage };
    throw err;
  }
}

beforeAll(async () => {
  expect(existsSync(SPAWNER_BINARY)).toBe(true);
  [spawned, forked] = await Promise.all([
    startAgentProcess({ user: "1000", allowRoot: true }),
    startAgentProcess({ user: "1000", allowRoot: true, env: { BHATTI_AGENT_SPAWNER: "off" } }),
  ]);
  viaSpawner = createAgentClient({
    control: spawned.control,
    forward: spawned.forward,
    token: spawned.token,
  });
  viaNode = createAgentClient({ control: forked.control, forward: forked.forward, token: forked.token });
  await currentSpawner(spawned);
});

afterAll(async () => {
  viaSpawner?.close();
  viaNode?.close();
  const spawners = spawned === undefined ? [] : readySpawners(spawned);
  await Promise.all([spawned?.stop(), forked?.stop()]);
  // The spawner goes with its agent (SIGKILLed on close; EOF on its stdin otherwise).
  for (const pid of spawners) await waitFor(() => !alive(pid));
});

describe("the resident spawner", () => {
  it("starts commands itself: their parent is the spawner, not the agent (Node does not fork)", async () => {
    const spawner = await currentSpawner(spawned);
    expect((await viaSpawner.exec(["sh", "-c", "echo $PPID"])).stdout.toString().trim()).toBe(
      String(spawner),
    );
    expect((await viaNode.exec(["sh", "-c", "echo $PPID"])).stdout.toString().trim()).toBe(
      String(forked.child.pid),
    );
    expect(readySpawners(forked)).toEqual([]);
  });

  it("gives the same results and error texts as Node's spawn", async () => {
    const dir = spawned.workspace;
    // Root-only: the agent (root) finds it executable, uid 1000's execve gets EACCES.
    writeFileSync(join(dir, "root-only.sh"), "#!/bin/sh\necho no\n");
    chmodSync(join(dir, "root-only.sh"), 0o700);
    // No #! line: execvp's fallback runs it with /bin/sh.
    writeFileSync(join(dir, "no-shebang"), "echo from-sh $1\n");
    chmodSync(join(dir, "no-shebang"), 0o755);
    const cases: [string[], Parameters<AgentClient["exec"]>[1]?][] = [
      [["true"]],
      [["false"]],
      [["sh", "-c", "exit 7"]],
      [["sh", "-c", "kill -TERM $$"]],
      [["sh", "-c", "kill -KILL $$"]],
      [["no-such-binary-xyz"]],
      [["./no-such-file"], { cwd: dir }],
      [[join(dir, "root-only.sh")]],
      [[join(dir, "no-shebang"), "arg1"]],
      [["sh", "-c", "cat; echo done"], { stdin: "hello\n" }],
      [["sh", "-c", "cat; echo eof"]],
      // stdin_null: /dev/null, the input dropped; stdout and stderr still reach the host.
      [
        ["sh", "-c", "readlink /proc/self/fd/0; cat; echo out; echo err >&2"],
        { stdinNull: true, stdin: "dropped" },
      ],
      [["sh", "-c", "for f in 1 2; do readlink /proc/$$/fd/$f | cut -c1-7; done"], { stdinNull: true }],
      [["sh", "-c", "id -u; id -g; id -G"]],
      [["sh", "-c", "id -u; id -g"], { root: true }],
      [["pwd"], { cwd: dir }],
      [
        ["sh", "-c", "env | grep -v -e '^BHATTI_AGENT_SPAWNER=' -e '^PWD=' | sort"],
        { env: { MY_VAR: "a b'c\"$x" } },
      ],
      [["sh", "-c", "umask; grep -E '^(SigBlk|SigIgn|NoNewPrivs)' /proc/self/status"]],
      // fds 0..2 are AF_UNIX sockets, as libuv gives.
      [["sh", "-c", "for f in 0 1 2; do readlink /proc/$$/fd/$f | cut -c1-7; done"]],
      // The command leads its own session and process group.
      [
        [
          "sh",
          "-c",
          "read -r _ _ _ _ pgrp sid _ < /proc/$$/stat; [ $pgrp = $$ ] && [ $sid = $$ ] && echo leader",
        ],
      ],
      [["sh", "-c", "printf 'argv0=%s\\n' \"$0\""]],
      // An argument over the kernel's 128 KiB limit: E2BIG, in spawn()'s words.
      [["sh", "-c", "true", "x".repeat(200_000)]],
    ];
    for (const [argv, options] of cases) {
      const [a, b] = [await outcome(viaSpawner, argv, options), await outcome(viaNode, argv, options)];
      expect({ argv, ...a }).toEqual({ argv, ...b });
    }
    // Exactly fds 0..2: nothing of the agent's or the spawner's (Node's children may inherit
    // what the agent itself inherited without CLOEXEC; the spawner closes that at its start).
    // (ls's own fd 3 is the directory it reads.)
    expect((await outcome(viaSpawner, ["ls", "-1", "/proc/self/fd"])).stdout).toBe("0\n1\n2\n3\n");
    // Spot checks that the comparison compared something.
    expect(await outcome(viaSpawner, [join(dir, "root-only.sh")])).toEqual({
      error: `start: fork/exec ${join(dir, "root-only.sh")}: permission denied`,
    });
    expect(await outcome(viaSpawner, ["no-such-binary-xyz"])).toEqual({
      error: 'start: exec: "no-such-binary-xyz": executable file not found in $PATH',
    });
    expect((await outcome(viaSpawner, ["sh", "-c", "kill -TERM $$"])).exit).toBe(143);
    expect((await outcome(viaSpawner, [join(dir, "no-shebang"), "arg1"])).stdout).toBe("from-sh arg1\n");
  });

  it("delivers every output frame before EXIT, large interleaved output intact", async () => {
    const conn = await rawConnect(spawned.control, spawned.token);
    const script =
      "i=0; while [ $i -lt 2000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; head -c 1048576 /dev/zero";
    conn.sendJson(FrameType.EXEC_REQ, { argv: ["sh", "-c", script] });
    conn.socket.end();
    const frames = await conn.readAll(60_000);
    expect(frames.at(-1)?.type).toBe(FrameType.EXIT);
    expect(frames.at(-1)?.payload.readInt32BE(0)).toBe(0);
    const body = frames.slice(0, -1);
    expect(body.every((f) => f.type === FrameType.STDOUT || f.type === FrameType.STDERR)).toBe(true);
    const text = (type: number) => Buffer.concat(body.filter((f) => f.type === type).map((f) => f.payload));
    const lines = (tag: string) => Array.from({ length: 2000 }, (_, i) => `${tag}${i}\n`).join("");
    const out = text(FrameType.STDOUT);
    expect(out.subarray(0, out.byteLength - 1048576).toString()).toBe(lines("out"));
    expect(out.subarray(out.byteLength - 1048576).every((b) => b === 0)).toBe(true);
    expect(text(FrameType.STDERR).toString()).toBe(lines("err"));
  });

  it("a SIGNAL frame reaches the grandchildren (the whole group)", async () => {
    const pidFile = join(spawned.workspace, "signal-grandchild.pid");
    rmSync(pidFile, { force: true });
    const conn = await rawConnect(spawned.control, spawned.token);
    conn.sendJson(FrameType.EXEC_REQ, {
      argv: ["sh", "-c", `sh -c 'sleep 300 & echo $! > ${pidFile}; wait' & wait`],
    });
    const grandchild = await waitFor(() => {
      const text = existsSync(pidFile) ? readFileSync(pidFile, "utf8").trim() : "";
      return text === "" ? undefined : Number(text);
    });
    expect(alive(grandchild)).toBe(true);
    conn.send(FrameType.SIGNAL, encodeSignalPayload("SIGTERM"));
    const frames = await conn.readAll(30_000);
    expect(frames.at(-1)?.type).toBe(FrameType.EXIT);
    expect(frames.at(-1)?.payload.readInt32BE(0)).toBe(143);
    await waitFor(() => !alive(grandchild));
    conn.close();
  });

  it("detached exec goes through the spawner too", async () => {
    const spawner = await currentSpawner(spawned);
    const outputFile = join(spawned.workspace, "detached-spawner.log");
    const r = await viaSpawner.execDetached(["sh", "-c", "echo $PPID; id -u; echo err >&2; echo finished"], {
      outputFile,
    });
    expect(r.pid).toBeGreaterThan(1);
    await waitFor(() => existsSync(outputFile) && readFileSync(outputFile, "utf8").includes("finished"));
    expect(readFileSync(outputFile, "utf8")).toBe(`${spawner}\n1000\nerr\nfinished\n`);
    await expect(viaSpawner.execDetached(["no-such-binary-xyz"])).rejects.toThrow(
      'agent error: start: exec: "no-such-binary-xyz": executable file not found in $PATH',
    );
  });

  it("a killed spawner: the next exec still works and the agent starts a new spawner", async () => {
    const before = await currentSpawner(spawned);
    process.kill(before, "SIGKILL");
    await waitFor(() => !alive(before));
    // Whether the agent noticed yet or not, this exec must work (Node's spawn meanwhile).
    const r = await viaSpawner.exec(["sh", "-c", "echo ok"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toBe("ok\n");
    const after = await currentSpawner(spawned, before);
    expect(after).not.toBe(before);
    expect((await viaSpawner.exec(["sh", "-c", "echo $PPID"])).stdout.toString().trim()).toBe(String(after));
  });

  it("a spawner killed under a running exec: its output still arrives, then a clear error", async () => {
    const spawner = await currentSpawner(spawned);
    // Started through the spawner (its parent), waiting for stdin.
    const proc = await viaSpawner.execStream(["sh", "-c", "echo parent=$PPID; read x; echo after-$x"]);
    const events: ExecEvent[] = [];
    const iterator = proc[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value).toEqual({ type: "stdout", data: Buffer.from(`parent=${spawner}\n`) });
    process.kill(spawner, "SIGKILL");
    await waitFor(() => !alive(spawner));
    await proc.write("go\n");
    proc.closeStdin();
    let error: unknown;
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next())
        events.push(next.value);
    } catch (err) {
      error = err;
    }
    expect(events.map((e) => (e.type === "exit" ? e : { type: e.type, text: e.data.toString() }))).toEqual([
      { type: "stdout", text: "after-go\n" },
    ]);
    expect(error).toBeInstanceOf(AgentError);
    expect((error as AgentError).agentMessage).toBe(SPAWNER_LOST_TEXT);
    // And the agent is back on a new spawner.
    const after = await currentSpawner(spawned, spawner);
    expect((await viaSpawner.exec(["sh", "-c", "echo $PPID"])).stdout.toString().trim()).toBe(String(after));
  });

  it("stdio goes to the agent's own socket even when its directory's path is taken over", async () => {
    const spawner = await currentSpawner(spawned);
    const socketPath = readFileSync(`/proc/${spawner}/cmdline`, "utf8").split("\0")[1]!;
    const dir = dirname(socketPath);
    const moved = `${dir}-moved`;
    renameSync(dir, moved);
    // An impostor socket at the old path: it must never see a connection.
    mkdirSync(dir, { mode: 0o700 });
    let impostorConnections = 0;
    const impostor = createServer((socket) => {
      impostorConnections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => impostor.listen(socketPath, resolve));
    try {
      const r = await viaSpawner.exec(["sh", "-c", "echo $PPID; echo to-err >&2"]);
      expect(r.stdout.toString()).toBe(`${spawner}\n`);
      expect(r.stderr.toString()).toBe("to-err\n");
      expect(impostorConnections).toBe(0);
    } finally {
      await new Promise((resolve) => impostor.close(resolve));
      rmSync(dir, { recursive: true, force: true });
      renameSync(moved, dir);
    }
  });

  it("takes requests larger than its read buffer (big argv and env), several back to back", async () => {
    const big = "y".repeat(100_000);
    const huge = "z".repeat(120_000);
    const results = await Promise.all(
      Array.from({ length: 3 }, (_, i) =>
        viaSpawner.exec(["sh", "-c", `printf '%s %s %s' "\${#1}" "\${#BIG_ENV}" ${i}`, "sh", big], {
          env: { BIG_ENV: huge },
        }),
      ),
    );
    expect(results.map((r) => [r.exitCode, r.stdout.toString()])).toEqual(
      Array.from({ length: 3 }, (_, i) => [0, `100000 120000 ${i}`]),
    );
    // Still the spawner's children, and it still takes small ones.
    const spawner = await currentSpawner(spawned);
    expect((await viaSpawner.exec(["sh", "-c", "echo $PPID"])).stdout.toString().trim()).toBe(
      String(spawner),
    );
  });

  it("10 concurrent execs all complete with their own output", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => viaSpawner.exec(["sh", "-c", `echo n${i}; exit ${i}`])),
    );
    expect(results.map((r) => [r.exitCode, r.stdout.toString()])).toEqual(
      Array.from({ length: 10 }, (_, i) => [i, `n${i}\n`]),
    );
  });
});

describe("a spawner that never comes up", () => {
  it("commands use Node's spawn, and the agent stops retrying after a few starts", async () => {
    // /bin/false exits at once without READY: every start fails.
    const agent = await startAgentProcess({ user: "1000", env: { BHATTI_AGENT_SPAWNER: "/bin/false" } });
    const client = createAgentClient({ control: agent.control, forward: agent.forward, token: agent.token });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await client.exec(["sh", "-c", "echo $PPID; exit 4"]);
        expect(r.exitCode).toBe(4);
        expect(r.stdout.toString().trim()).toBe(String(agent.child.pid));
      }
      await waitFor(() => agent.logs.some((l) => l.includes("spawner keeps failing to start")), 30_000);
      expect(readySpawners(agent)).toEqual([]);
      expect((await client.exec(["true"])).exitCode).toBe(0);
    } finally {
      client.close();
      await agent.stop();
    }
  }, 60_000);
});

/** A command run through an in-process ResidentSpawner: its output and how it ended. */
async function runVia(spawner: ResidentSpawner, script: string, cwd: string) {
  const command = await spawner.startCommand({
    file: "sh",
    path: "/bin/sh",
    args: ["-c", script],
    argv: ["sh", "-c", script],
    env: { PATH: "/usr/local/bin:/usr/bin:/bin" },
    cwd,
    identity: ROOT_IDENTITY,
    credentials: undefined,
    stdinNull: false,
  });
  if (command === undefined) return undefined;
  const out: Buffer[] = [];
  command.stdout!.on("data", (chunk: Buffer) => out.push(chunk));
  command.stdout!.resume();
  command.stderr!.resume();
  command.stdin!.end();
  const code = await new Promise<number | null>((resolve, reject) => {
    command.once("close", (c: number | null) => resolve(c));
    command.once("error", reject);
  });
  return { code, stdout: Buffer.concat(out).toString() };
}

/** Socket inodes the process holds on fds above 2 (the spawner's pooled connections). */
function socketInodes(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`)
    .filter((fd) => Number(fd) > 2)
    .flatMap((fd) => {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        return target.startsWith("socket:") ? [target] : [];
      } catch {
        return [];
      }
    });
}

describe("the spawner's pool of pre-connected stdio connections", () => {
  const POOL = 6;
  const silent: AgentLogger = { info() {}, warn() {}, error() {} };
  let dir: string;
  let spawner: ResidentSpawner;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-pool-"));
    spawner = new ResidentSpawner(SPAWNER_BINARY, silent, dir, POOL);
    spawner.start();
    await waitFor(() => spawner.pid !== undefined && spawner.pooledIdle === POOL);
  });

  afterAll(() => {
    const pid = spawner?.pid;
    spawner?.close();
    if (pid !== undefined) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone with close().
      }
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("an exec's fds 0..2 are connections the spawner had made before the request (no connect on the way)", async () => {
    const pid = await waitFor(() => (spawner.pooledIdle === POOL ? spawner.pid : undefined));
    const before = new Set(socketInodes(pid));
    expect(before.size).toBe(POOL);
    const counts = { ...spawner.stdioCounts };
    const r = await runVia(
      spawner,
      "for f in 0 1 2; do readlink /proc/$$/fd/$f; done; ls /proc/self/fd",
      dir,
    );
    const lines = r!.stdout.trim().split("\n");
    expect(lines.slice(0, 3).every((l) => before.has(l))).toBe(true);
    expect(new Set(lines.slice(0, 3)).size).toBe(3);
    // Exactly 0..2 (ls's own fd 3 is the directory it reads): no other pooled connection leaks.
    expect(lines.slice(3)).toEqual(["0", "1", "2", "3"]);
    expect(r!.code).toBe(0);
    expect(spawner.stdioCounts).toEqual({ pooled: counts.pooled + 1, connectBack: counts.connectBack });
    // Topped up again, off the exec's path, and the used ones are gone from the spawner.
    await waitFor(() => spawner.pooledIdle === POOL && socketInodes(pid).length === POOL);
    const after = new Set(socketInodes(pid));
    expect(lines.slice(0, 3).some((l) => after.has(l))).toBe(false);
  });

  it("a burst of 50 beyond the pool: the rest connect back, every command has its own output and exit code", async () => {
    await waitFor(() => spawner.pooledIdle === POOL);
    const counts = { ...spawner.stdioCounts };
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => runVia(spawner, `echo n${i}; exit ${i % 7}`, dir)),
    );
    expect(results.map((r) => [r?.code, r?.stdout])).toEqual(
      Array.from({ length: 50 }, (_, i) => [i % 7, `n${i}\n`]),
    );
    const pooled = spawner.stdioCounts.pooled - counts.pooled;
    const connectBack = spawner.stdioCounts.connectBack - counts.connectBack;
    expect(pooled + connectBack).toBe(50);
    expect(pooled).toBeGreaterThanOrEqual(POOL / 3);
    expect(connectBack).toBeGreaterThan(0);
    // And the pool comes back whole.
    const pid = spawner.pid!;
    await waitFor(() => spawner.pooledIdle === POOL && socketInodes(pid).length === POOL);
  }, 60_000);

  it("a pooled connection the agent closed: the spawner drops it, tops up, and execs keep working", async () => {
    const pid = await waitFor(() => (spawner.pooledIdle === POOL ? spawner.pid : undefined));
    const [victim] = spawner.pooledSockets();
    victim!.destroy();
    // Out of the pool once its close is seen (never handed to a command).
    await waitFor(() => !spawner.pooledSockets().includes(victim!));
    // The spawner saw its EOF and made a new one: POOL again on both sides, no dead fd kept.
    await waitFor(() => spawner.pooledIdle === POOL && socketInodes(pid).length === POOL);
    for (let i = 0; i < 4; i++) {
      expect(await runVia(spawner, `echo again${i}`, dir)).toEqual({ code: 0, stdout: `again${i}\n` });
    }
    expect(spawner.pid).toBe(pid);
  });

  it("a spawner killed with pooled connections outstanding: its pool is dropped, the next spawner's is used", async () => {
    const before = await waitFor(() => (spawner.pooledIdle === POOL ? spawner.pid : undefined));
    const held = spawner.pooledSockets();
    process.kill(before, "SIGKILL");
    await waitFor(() => held.every((s) => s.destroyed));
    const after = await waitFor(
      () =>
        spawner.pid !== undefined && spawner.pid !== before && spawner.pooledIdle === POOL
          ? spawner.pid
          : undefined,
      30_000,
    );
    expect(held.some((s) => spawner.pooledSockets().includes(s))).toBe(false);
    const pooledBefore = spawner.stdioCounts.pooled;
    const r = await runVia(spawner, "echo $PPID", dir);
    expect(r).toEqual({ code: 0, stdout: `${after}\n` });
    expect(spawner.stdioCounts.pooled).toBe(pooledBefore + 1);
  }, 60_000);

  it("pool size 0: every exec connects back, as before the pool", async () => {
    const own = new ResidentSpawner(SPAWNER_BINARY, silent, dir, 0);
    try {
      own.start();
      const pid = await waitFor(() => own.pid);
      const r = await runVia(own, "echo plain", dir);
      expect(r).toEqual({ code: 0, stdout: "plain\n" });
      expect(own.stdioCounts).toEqual({ pooled: 0, connectBack: 1 });
      expect(own.pooledIdle).toBe(0);
      expect(socketInodes(pid)).toEqual([]);
    } finally {
      own.close();
    }
  });
});
