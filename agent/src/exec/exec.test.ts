import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type AgentClient, createAgentClient } from "@bhatti/agent-client";
import { FrameType } from "@bhatti/agent-protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgentProcess } from "../testing/agent-process.js";
import { rawConnect } from "../testing/raw-connection.js";

let agent: AgentProcess;
let client: AgentClient;
let workdir: string;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

beforeAll(async () => {
  agent = await startAgentProcess({ user: "1000", allowRoot: true });
  workdir = agent.workspace;
  client = createAgentClient({ control: agent.control, forward: agent.forward, token: agent.token });
});

afterAll(async () => {
  client?.close();
  await agent?.stop();
});

describe("one-shot exec", () => {
  it("stdin_null: the command's stdin is /dev/null and input sent anyway is dropped", async () => {
    const r = await client.exec(["sh", "-c", "readlink /proc/self/fd/0; cat; echo end"], {
      stdinNull: true,
      stdin: "dropped",
    });
    expect(r).toMatchObject({ exitCode: 0, stdout: Buffer.from("/dev/null\nend\n") });
    // Without it stdin is a stream from the host, which ends.
    const streamed = await client.exec(["sh", "-c", "cat; echo end"], { stdin: "piped " });
    expect(streamed.stdout.toString()).toBe("piped end\n");
  });

  it("reports exit codes: true 0, false 1, a signal 128+n", async () => {
    expect((await client.exec(["true"])).exitCode).toBe(0);
    expect((await client.exec(["false"])).exitCode).toBe(1);
    expect((await client.exec(["sh", "-c", "kill -TERM $$"])).exitCode).toBe(143);
  });

  it("keeps stdout and stderr apart and delivers all output before EXIT", async () => {
    const r = await client.exec(["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"]);
    expect(r.stdout.toString()).toBe("out1\nout2\n");
    expect(r.stderr.toString()).toBe("err1\nerr2\n");
  });

  it("streams 1 MB of output intact", async () => {
    const r = await client.exec(["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' 'x'"]);
    expect(r.stdout.byteLength).toBe(1048576);
    expect(r.stdout.every((b) => b === 0x78)).toBe(true);
  });

  it("interleaved heavy stdout and stderr frames arrive uncorrupted", async () => {
    const script = "i=0; while [ $i -lt 1000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    const r = await client.exec(["sh", "-c", script]);
    const expected = (tag: string) => Array.from({ length: 1000 }, (_, i) => `${tag}${i}\n`).join("");
    expect(r.stdout.toString()).toBe(expected("out"));
    expect(r.stderr.toString()).toBe(expected("err"));
  });

  it("passes stdin and closes it on the host's half-close", async () => {
    const r = await client.exec(["sh", "-c", "cat; echo done"], { stdin: "hello\n" });
    expect(r.stdout.toString()).toBe("hello\ndone\n");
  });

  it("runs as uid/gid 1000 by default and as root only when asked", async () => {
    expect((await client.exec(["id", "-u"])).stdout.toString().trim()).toBe("1000");
    expect((await client.exec(["id", "-g"])).stdout.toString().trim()).toBe("1000");
    expect((await client.exec(["id", "-u"], { root: true })).stdout.toString().trim()).toBe("0");
  });

  it("layers the environment: defaults, then the request's env", async () => {
    const r = await client.exec(["sh", "-c", 'echo "$TERM|$LANG|$MY_VAR|$HOME"'], {
      env: { MY_VAR: "a b'c\"$x", LANG: "C.UTF-8" },
    });
    const [term, lang, mine, home] = r.stdout.toString().trim().split("|");
    expect(term).toBe("xterm-256color");
    expect(lang).toBe("C.UTF-8");
    expect(mine).toBe("a b'c\"$x");
    expect(home).not.toBe("/root");
  });

  it("runs in the requested cwd, else the workdir/home; a missing cwd is an error", async () => {
    expect((await client.exec(["pwd"], { cwd: workdir })).stdout.toString().trim()).toBe(workdir);
    const def = (await client.exec(["pwd"])).stdout.toString().trim();
    expect(def.length).toBeGreaterThan(0);
    await expect(client.exec(["pwd"], { cwd: "/no/such/dir" })).rejects.toThrow(
      "agent error: start: chdir /no/such/dir: no such file or directory",
    );
  });

  it("reports a missing binary as an error", async () => {
    await expect(client.exec(["no-such-binary-xyz"])).rejects.toThrow(
      'agent error: start: exec: "no-such-binary-xyz": executable file not found in $PATH',
    );
    await expect(client.exec([])).rejects.toThrow("agent error: empty argv");
  });

  it("KILL reaches grandchildren (the whole process group)", async () => {
    const pidFile = join(workdir, "grandchild.pid");
    const proc = await client.execStream([
      "sh",
      "-c",
      `sh -c 'sleep 300 & echo $! > ${pidFile}; wait' & wait`,
    ]);
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "")).toBe(
      true,
    );
    const grandchild = Number(readFileSync(pidFile, "utf8").trim());
    expect(processAlive(grandchild)).toBe(true);
    proc.kill();
    const events = [];
    for await (const ev of proc) events.push(ev);
    expect(events.at(-1)).toEqual({ type: "exit", exitCode: 137 });
    expect(await waitFor(() => !processAlive(grandchild))).toBe(true);
  });

  it("kills the process group when the host disconnects before EXIT", async () => {
    const pidFile = join(workdir, "orphan.pid");
    rmSync(pidFile, { force: true });
    const proc = await client.execStream(["sh", "-c", `echo $$ > ${pidFile}; sleep 300`]);
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "")).toBe(
      true,
    );
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    proc.close();
    expect(await waitFor(() => !processAlive(pid))).toBe(true);
  });

  it("streams events and accepts stdin while running", async () => {
    const proc = await client.execStream(["sh", "-c", "read line; echo got:$line; echo bye >&2"]);
    await proc.write("ping\n");
    const events = [];
    for await (const ev of proc)
      events.push(ev.type === "exit" ? ev : { type: ev.type, text: ev.data.toString() });
    expect(events).toEqual([
      { type: "stdout", text: "got:ping\n" },
      { type: "stderr", text: "bye\n" },
      { type: "exit", exitCode: 0 },
    ]);
  });

  it("AbortSignal cancels a running exec and the command dies", async () => {
    const pidFile = join(workdir, "abort.pid");
    const controller = new AbortController();
    const running = client.exec(["sh", "-c", `echo $$ > ${pidFile}; sleep 300`], {
      signal: controller.signal,
    });
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "")).toBe(
      true,
    );
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    controller.abort();
    await expect(running).rejects.toThrow(/abort/i);
    expect(await waitFor(() => !processAlive(pid))).toBe(true);
  });

  it("caps buffered output and says so", async () => {
    const r = await client.exec(["sh", "-c", "head -c 5000 /dev/zero"], { maxOutputBytes: 1000 });
    expect(r.truncated).toBe(true);
    expect(r.stdout.byteLength).toBe(1000);
    expect(r.stderr.toString()).toBe("\n[output truncated at 10MB]");
  });
});

describe("detached exec", () => {
  it("returns the pid and output file, and the process outlives the connection", async () => {
    const outputFile = join(workdir, "detached.log");
    const r = await client.execDetached(["sh", "-c", "echo started; id -u; sleep 0.2; echo finished"], {
      outputFile,
    });
    expect(r.outputFile).toBe(outputFile);
    expect(r.pid).toBeGreaterThan(1);
    expect(
      await waitFor(() => existsSync(outputFile) && readFileSync(outputFile, "utf8").includes("finished")),
    ).toBe(true);
    expect(readFileSync(outputFile, "utf8")).toBe("started\n1000\nfinished\n");
  });

  it("speaks v1's reply format: one STDOUT JSON frame, then EXIT(0)", async () => {
    const conn = await rawConnect(agent.control, agent.token);
    conn.sendJson(FrameType.EXEC_REQ, { argv: ["true"], detach: true, output_file: join(workdir, "d2.log") });
    const frames = await conn.readAll();
    expect(frames.map((f) => f.type)).toEqual([FrameType.STDOUT, FrameType.EXIT]);
    expect(JSON.parse(frames[0]!.payload.toString())).toEqual({
      pid: expect.any(Number),
      output_file: join(workdir, "d2.log"),
    });
    expect(frames[1]!.payload.readInt32BE(0)).toBe(0);
  });
});
