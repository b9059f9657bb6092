// The sudo shim (bundled exactly as in the package) run as uid 1000 against a real agent
// (running as root) serving its sudo socket: real processes, a real Unix socket, a real PTY.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type AgentClient, createAgentClient } from "@bhatti/agent-client";
import { FrameReader, FrameType, encodeFrame, encodeJsonFrame, type Frame } from "@bhatti/agent-protocol";
import type { IPty } from "node-pty";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPasswdEntry } from "../identity.js";
import { type AgentProcess, startAgentProcess } from "../testing/agent-process.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const canRun = process.getuid?.() === 0;
const USER_UID = 1000;

interface SudoResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

describe.skipIf(!canRun)("sudo through the agent's sudo socket", () => {
  let work: string;
  let shim: string;
  let socketPath: string;
  let agent: AgentProcess;
  let client: AgentClient;
  const userName = findPasswdEntry({ uid: USER_UID })?.name ?? String(USER_UID);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "bhatti-test-sudo-"));
    chmodSync(work, 0o755);
    execFileSync(process.execPath, [
      join(repoRoot, "agent/scripts/build-sudo-shim.mjs"),
      "--out",
      join(work, "pkg"),
    ]);
    chmodSync(join(work, "pkg"), 0o755);
    shim = join(work, "pkg/sudo.mjs");
    socketPath = join(work, "run/bhatti/sudo.sock");
    agent = await startAgentProcess({ user: String(USER_UID), sudoSocket: socketPath });
    client = createAgentClient({ control: agent.control, forward: agent.forward, token: agent.token });
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await agent?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PATH: "/usr/local/bin:/usr/bin:/bin",
      HOME: "/home/test-user",
      TERM: "xterm-test",
      LANG: "C.UTF-8",
      BHATTI_SUDO_SOCKET: socketPath,
      ...extra,
    };
  }

  function startSudo(
    args: string[],
    options: { env?: Record<string, string>; cwd?: string; uid?: number } = {},
  ): ChildProcess {
    const uid = options.uid ?? USER_UID;
    return spawn(process.execPath, [shim, ...args], {
      uid,
      gid: uid,
      cwd: options.cwd ?? work,
      env: options.env ?? baseEnv(),
      stdio: ["pipe", "pipe", "pipe"],
    });
  }

  async function sudo(
    args: string[],
    options: { input?: Buffer | string; env?: Record<string, string>; cwd?: string; uid?: number } = {},
  ): Promise<SudoResult> {
    const child = startSudo(args, options);
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on("error", () => {});
    child.stdin!.end(options.input ?? "");
    const [code] = (await once(child, "close")) as [number | null];
    return { code, stdout: Buffer.concat(out), stderr };
  }

  function envOf(result: SudoResult): Record<string, string> {
    const env: Record<string, string> = {};
    for (const line of result.stdout.toString().split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return env;
  }

  it("as uid 1000, `sudo -n id -u` prints 0", async () => {
    const r = await sudo(["-n", "id", "-u"]);
    expect(r).toEqual({ code: 0, stdout: Buffer.from("0\n"), stderr: "" });
    // The caller really is uid 1000: without sudo, id says so.
    const plain = execFileSync("id", ["-u"], { uid: USER_UID, gid: USER_UID, encoding: "utf8" });
    expect(plain).toBe(`${USER_UID}\n`);
  });

  it("writes a root-owned file where uid 1000 may not write", async () => {
    const dir = join(work, "root-only");
    mkdirSync(dir, { mode: 0o755 });
    const file = join(dir, "bhatti-sudo-test");
    const denied = spawn("sh", ["-c", `echo no > ${file}`], {
      uid: USER_UID,
      gid: USER_UID,
      stdio: "ignore",
    });
    const [deniedCode] = (await once(denied, "close")) as [number];
    expect(deniedCode).not.toBe(0);
    const r = await sudo(["sh", "-c", `echo ok > ${file}`]);
    expect(r.code).toBe(0);
    expect(readFileSync(file, "utf8")).toBe("ok\n");
    expect(statSync(file).uid).toBe(0);
    expect(statSync(file).gid).toBe(0);
  });

  it("relays stdin, stdout and stderr byte-exact, with stdin's EOF", async () => {
    const piped = execFileSync("sh", ["-c", `printf 'abc' | '${process.execPath}' '${shim}' cat`], {
      uid: USER_UID,
      gid: USER_UID,
      env: baseEnv(),
      cwd: work,
    });
    expect(piped.toString()).toBe("abc");
    const binary = Buffer.alloc(300_000);
    for (let i = 0; i < binary.length; i++) binary[i] = (i * 7919) & 0xff;
    const cat = await sudo(["cat"], { input: binary });
    expect(cat.code).toBe(0);
    expect(cat.stdout.equals(binary)).toBe(true);
    // wc only answers once its stdin has ended.
    expect((await sudo(["wc", "-c"], { input: "hello" })).stdout.toString().trim()).toBe("5");
    const split = await sudo(["sh", "-c", "echo out; echo err >&2; echo out2"]);
    expect(split.stdout.toString()).toBe("out\nout2\n");
    expect(split.stderr).toBe("err\n");
  });

  it("exits with the command's code, and 128+n for a signal", async () => {
    expect((await sudo(["sh", "-c", "exit 7"])).code).toBe(7);
    expect((await sudo(["sh", "-c", "kill -TERM $$"])).code).toBe(143);
    const missing = await sudo(["no-such-command-xyz"]);
    expect(missing).toMatchObject({ code: 1, stderr: "sudo: no-such-command-xyz: command not found\n" });
  });

  it("`sudo -u nobody true` fails with a clear message; -u root and -u 0 work", async () => {
    const r = await sudo(["-u", "nobody", "true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'sudo: running commands as "nobody" is not supported in this sandbox: only root (-u root) is available\n',
    );
    expect((await sudo(["-u", "0", "id", "-u"])).stdout.toString()).toBe("0\n");
  });

  it("resets the environment without -E and keeps it with -E", async () => {
    const env = baseEnv({ FOO: "bar", LC_TIME: "C" });
    const reset = envOf(await sudo(["env"], { env }));
    expect(reset["FOO"]).toBeUndefined();
    expect(reset["BHATTI_SUDO_SOCKET"]).toBeUndefined();
    expect(reset).toMatchObject({
      TERM: "xterm-test",
      LANG: "C.UTF-8",
      LC_TIME: "C",
      HOME: "/root",
      USER: "root",
      LOGNAME: "root",
      SUDO_USER: userName,
      SUDO_UID: String(USER_UID),
      SUDO_GID: String(USER_UID),
      SUDO_COMMAND: "env",
    });
    expect(reset["PATH"]).toBe("/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin");
    const kept = envOf(await sudo(["-E", "env"], { env }));
    expect(kept).toMatchObject({ FOO: "bar", HOME: "/home/test-user", USER: "root", SUDO_USER: userName });
    expect(envOf(await sudo(["-E", "-H", "env"], { env }))["HOME"]).toBe("/root");
    expect(envOf(await sudo(["--preserve-env=FOO", "X=1", "env"], { env }))).toMatchObject({
      FOO: "bar",
      X: "1",
    });
    // NODE_OPTIONS moved aside by the wrapper comes back for the command.
    const nodeOptions = envOf(
      await sudo(["-E", "env"], { env: { ...env, BHATTI_SUDO_NODE_OPTIONS: "--x" } }),
    );
    expect(nodeOptions["NODE_OPTIONS"]).toBe("--x");
    expect(nodeOptions["BHATTI_SUDO_NODE_OPTIONS"]).toBeUndefined();
  });

  it("runs in the caller's working directory, or -D's, or root's home with -i", async () => {
    const sub = join(work, "sub dir");
    mkdirSync(sub, { mode: 0o755 });
    expect((await sudo(["pwd"], { cwd: sub })).stdout.toString()).toBe(`${sub}\n`);
    expect((await sudo(["-D", "/tmp", "pwd"], { cwd: sub })).stdout.toString()).toBe("/tmp\n");
    expect(
      (await sudo(["-s", "echo", "$HOME", "a b"], { env: baseEnv({ SHELL: "/bin/sh" }) })).stdout.toString(),
    ).toBe("/root a b\n");
    const login = await sudo(["-i", "pwd"]);
    expect(login.stdout.toString().trim().split("\n").at(-1)).toBe(
      findPasswdEntry({ uid: 0 })?.home ?? "/root",
    );
  });

  it("passes SIGINT on to the command, and a killed sudo kills its command", async () => {
    const trapped = startSudo([
      "sh",
      "-c",
      'trap "echo got-int; exit 5" INT; echo ready; while :; do sleep 0.05; done',
    ]);
    let out = "";
    trapped.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    while (!out.includes("ready")) await once(trapped.stdout!, "data");
    trapped.kill("SIGINT");
    const [code] = (await once(trapped, "close")) as [number];
    expect(out).toBe("ready\ngot-int\n");
    expect(code).toBe(5);

    const sleeper = startSudo(["sh", "-c", "echo $$; exec sleep 300"]);
    const [first] = (await once(sleeper.stdout!, "data")) as [Buffer];
    const pid = Number(first.toString().trim());
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^Uid:\s+0\s/m);
    sleeper.kill("SIGKILL");
    const deadline = Date.now() + 10_000;
    while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });

  it("uses a TTY exec when stdin and stdout are terminals: tty, window size, resizes, ^C", async () => {
    const nodePty = createRequire(import.meta.url)("node-pty") as typeof import("node-pty");
    const runInPty = (args: string[]) =>
      nodePty.spawn(process.execPath, [shim, ...args], {
        name: "xterm",
        cols: 80,
        rows: 24,
        cwd: work,
        env: baseEnv(),
        uid: USER_UID,
        gid: USER_UID,
      } as Parameters<typeof nodePty.spawn>[2]);
    const collect = (pty: IPty) => {
      const state = { out: "", exit: undefined as number | undefined };
      pty.onData((d) => (state.out += d));
      const exited = new Promise<number>((resolve) =>
        pty.onExit(({ exitCode }) => {
          state.exit = exitCode;
          resolve(exitCode);
        }),
      );
      const waitFor = async (text: string) => {
        const deadline = Date.now() + 15_000;
        while (!state.out.includes(text) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 20));
        expect(state.out).toContain(text);
      };
      return { state, exited, waitFor };
    };

    const sized = runInPty([
      "sh",
      "-c",
      'echo "size $(stty size) uid $(id -u) $(tty)"; while [ "$(stty size)" != "40 120" ]; do sleep 0.05; done; echo resized; exit 4',
    ]);
    const s = collect(sized);
    await s.waitFor("size 24 80 uid 0 /dev/pts/");
    sized.resize(120, 40);
    await s.waitFor("resized");
    expect(await s.exited).toBe(4);
    // Root's terminal turns "\n" into "\r\n"; ours must not add another "\r".
    expect(s.state.out).toMatch(/^size 24 80 uid 0 \/dev\/pts\/\d+\r\nresized\r\n$/);

    const interrupted = runInPty(["sh", "-c", "echo started; exec sleep 300"]);
    const i = collect(interrupted);
    // The terminal is in raw mode, so ^C travels as a byte to root's terminal, which raises SIGINT.
    await i.waitFor("started");
    interrupted.write("\x03");
    expect(await i.exited).toBe(130);
  });

  it("the socket is 0666 in a 0755 directory, and serves exec only, without AUTH", async () => {
    expect(statSync(socketPath).mode & 0o777).toBe(0o666);
    expect(statSync(dirname(socketPath)).mode & 0o777).toBe(0o755);
    const exchange = async (frames: Buffer[]): Promise<Frame[]> => {
      const socket = connect({ path: socketPath, allowHalfOpen: true });
      socket.on("error", () => {});
      await once(socket, "connect");
      const reader = new FrameReader(socket);
      for (const f of frames) socket.write(f);
      socket.end();
      const got: Frame[] = [];
      for (let f = await reader.read(5_000); f !== null; f = await reader.read(5_000)) got.push(f);
      socket.destroy();
      return got;
    };
    const errorOf = async (frame: Buffer) => {
      const got = await exchange([frame]);
      expect(got.map((f) => f.type)).toEqual([FrameType.ERROR]);
      return got[0]!.payload.toString();
    };
    expect(await errorOf(encodeFrame(FrameType.AUTH, agent.token))).toBe("unexpected frame type 0x11");
    expect(await errorOf(encodeJsonFrame(FrameType.FILE_READ_REQ, { path: "/etc/shadow" }))).toBe(
      "unexpected frame type 0x50",
    );
    expect(await errorOf(encodeFrame(FrameType.EXEC_LIST_REQ))).toBe("unexpected frame type 0x30");
    expect(await errorOf(encodeFrame(FrameType.FWD_REQ, '{"port":22}'))).toBe("unexpected frame type 0x20");
    expect(await errorOf(encodeJsonFrame(FrameType.EXEC_REQ, { argv: ["true"], detach: true }))).toBe(
      "detached exec is not available on the sudo socket",
    );
    expect(await errorOf(encodeJsonFrame(FrameType.EXEC_REQ, { argv: [], session_id: "init" }))).toBe(
      "attach is not available on the sudo socket",
    );
    expect(await errorOf(encodeJsonFrame(FrameType.EXEC_REQ, { argv: ["sh"], session: true }))).toBe(
      "a piped session is not available on the sudo socket",
    );
    expect(await errorOf(encodeJsonFrame(FrameType.EXEC_REQ, { argv: [] }))).toBe("empty argv");
    expect(await errorOf(encodeFrame(FrameType.EXEC_REQ, "{nope"))).toMatch(/^bad exec request: /);

    const ran = await exchange([encodeJsonFrame(FrameType.EXEC_REQ, { argv: ["id", "-u"], cwd: "/" })]);
    expect(ran.filter((f) => f.type === FrameType.STDOUT).map((f) => f.payload.toString())).toEqual(["0\n"]);
    expect(ran.at(-1)?.type).toBe(FrameType.EXIT);

    // The TCP control port is unchanged: AUTH still required, commands still run as uid 1000,
    // root exec still refused without allow_root_exec.
    expect((await client.exec(["id", "-u"])).stdout.toString()).toBe(`${USER_UID}\n`);
    await expect(client.exec(["id", "-u"], { root: true })).rejects.toThrow("root exec is not allowed");
    expect(agent.logs.some((l) => l.includes('"msg":"sudo exec"') && l.includes('"argv":["id","-u"]'))).toBe(
      true,
    );
  });

  it("says so when the sandbox has no sudo service; root itself needs none", async () => {
    const env = baseEnv({ BHATTI_SUDO_SOCKET: join(work, "absent.sock") });
    const r = await sudo(["true"], { env });
    expect(r).toMatchObject({
      code: 1,
      stderr: "sudo: bhatti sudo service is not available in this sandbox\n",
    });
    expect((await sudo(["-v"], { env })).code).toBe(1);
    expect((await sudo(["-v"])).code).toBe(0);
    expect((await sudo(["-l"])).stdout.toString()).toMatch(
      /^User \S+ may run all commands as root on \S+ without/,
    );
    const asRoot = await sudo(["sh", "-c", "id -u; exit 3"], { env, uid: 0 });
    expect(asRoot).toMatchObject({ code: 3, stdout: Buffer.from("0\n") });
  });
});
