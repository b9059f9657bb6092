import {
  type AgentClient,
  type SessionConnection,
  type SessionEvent,
  createAgentClient,
} from "@bhatti/agent-client";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FrameType } from "@bhatti/agent-protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgentProcess } from "../testing/agent-process.js";
import { rawConnect, textOf } from "../testing/raw-connection.js";

let agent: AgentProcess;
let client: AgentClient;

beforeAll(async () => {
  agent = await startAgentProcess({ user: "1000" });
  client = createAgentClient({ control: agent.control, forward: agent.forward, token: agent.token });
});

afterEach(async () => {
  for (const s of await client.listSessions())
    if (s.running) await client.killSession(s.session_id).catch(() => {});
  // Wait for the kills to land so the next test starts from a quiet agent.
  await eventually(
    () => client.listSessions(),
    (l) => l.every((s) => !s.running),
  );
});

afterAll(async () => {
  client?.close();
  await agent?.stop();
});

/** Reads session events until `text` has been seen in the output (or the session exits). */
async function readUntil(
  it: AsyncIterator<SessionEvent>,
  text: string,
  timeoutMs = 10_000,
): Promise<{ output: string; exit?: number }> {
  let output = "";
  const deadline = Date.now() + timeoutMs;
  while (!output.includes(text)) {
    const next = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) =>
        setTimeout(
          () =>
            reject(new Error(`timeout waiting for ${JSON.stringify(text)}; got ${JSON.stringify(output)}`)),
          Math.max(1, deadline - Date.now()),
        ),
      ),
    ]);
    if (next.done) return { output };
    if (next.value.type === "exit") return { output, exit: next.value.exitCode };
    output += next.value.data.toString("latin1");
  }
  return { output };
}

/** Polls until `ok`; the deadline only bounds a failing test (generous for a loaded machine). */
async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value) || Date.now() > end) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sessionIterator = (s: SessionConnection) => s[Symbol.asyncIterator]();

describe("TTY sessions", () => {
  it("create sends SESSION_INFO first, runs on a TTY as uid 1000, and resizes", async () => {
    const s = await client.openTtySession(["sh"], { rows: 30, cols: 100 });
    expect(s.info).toMatchObject({
      session_id: expect.stringMatching(/^s\d+$/),
      tty: true,
      running: true,
      attached: true,
      argv: "sh",
    });
    const it = sessionIterator(s);
    await s.write("stty size; id -u; tty\r");
    const first = await readUntil(it, "/dev/pts/");
    expect(first.output).toContain("30 100");
    expect(first.output).toMatch(/\r\n1000\r\n/);
    s.resize(40, 120);
    await s.write("stty size\r");
    expect((await readUntil(it, "40 120")).output).toContain("40 120");
    s.detach();
  });

  it("survives a detach, and a reattach replays the scrollback before live output", async () => {
    const s = await client.openTtySession(["sh"]);
    const id = s.sessionId;
    const it = sessionIterator(s);
    await s.write("echo before-detach\r");
    await readUntil(it, "before-detach\r\n");
    s.detach();
    await eventually(
      () => client.listSessions(),
      (l) => l.some((x) => x.session_id === id && !x.attached),
    );
    const sessions = await client.listSessions();
    expect(sessions.find((x) => x.session_id === id)).toMatchObject({
      running: true,
      attached: false,
      tty: true,
    });

    // Raw frames: SESSION_INFO, then the whole scrollback in one STDOUT frame, then live bytes.
    const raw = await rawConnect(agent.control, agent.token);
    raw.sendJson(FrameType.EXEC_REQ, { argv: [], session_id: id });
    const info = await raw.read();
    expect(info!.type).toBe(FrameType.SESSION_INFO);
    expect(JSON.parse(textOf(info))).toMatchObject({ session_id: id, running: true });
    const replay = await raw.read();
    expect(replay!.type).toBe(FrameType.STDOUT);
    expect(textOf(replay)).toContain("before-detach");
    raw.send(FrameType.STDIN, "echo after-attach\r");
    let live = "";
    while (!live.includes("after-attach\r\n")) live += textOf(await raw.read());
    raw.close();
  });

  it("a second attach kicks the first client with EXIT(0); if_detached refuses an attached session", async () => {
    const s = await client.openTtySession(["sh"]);
    const id = s.sessionId;
    await expect(client.attachSession(id, { ifDetached: true })).rejects.toThrow(
      "agent error: session is attached",
    );
    const second = await client.attachSession(id);
    const kicked = await readUntil(sessionIterator(s), "never-printed");
    expect(kicked.exit).toBe(0);
    expect((await client.listSessions()).find((x) => x.session_id === id)?.running).toBe(true);
    second.detach();
  });

  it("KILL from the attached client sends SIGTERM, which a process may trap", async () => {
    const s = await client.openTtySession([
      "sh",
      "-c",
      "trap 'echo got-term' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    const it = sessionIterator(s);
    await readUntil(it, "ready");
    s.kill();
    expect((await readUntil(it, "got-term")).output).toContain("got-term");
    expect((await client.listSessions()).find((x) => x.session_id === s.sessionId)?.running).toBe(true);
    s.detach();
  });

  it("SIGNAL (v2) from the attached client delivers that signal to the group", async () => {
    const raw = await rawConnect(agent.control, agent.token);
    raw.sendJson(FrameType.EXEC_REQ, {
      argv: ["sh", "-c", "trap 'echo got-usr1; exit 6' USR1; echo ready; while :; do read x; done"],
      session: true,
    });
    expect((await raw.read())!.type).toBe(FrameType.SESSION_INFO);
    let out = "";
    while (!out.includes("ready")) out += textOf(await raw.read());
    raw.send(FrameType.SIGNAL, "SIGBOGUS");
    raw.send(FrameType.SIGNAL, "SIGUSR1");
    const rest = await raw.readAll();
    expect(
      rest.map((f) => (f.type === FrameType.EXIT ? `exit ${f.payload.readInt32BE(0)}` : textOf(f))).join(""),
    ).toBe("got-usr1\nexit 6");
    raw.close();
  });

  it("EXEC_KILL SIGKILLs the session; unknown ids are 'session not found'", async () => {
    const s = await client.openTtySession(["sh", "-c", "trap '' TERM; echo ready; sleep 300"]);
    const it = sessionIterator(s);
    await readUntil(it, "ready");
    await client.killSession(s.sessionId);
    expect((await readUntil(it, "never")).exit).toBe(137);
    await expect(client.killSession("s999999")).rejects.toThrow("agent error: session not found");
    await expect(client.attachSession("s999999")).rejects.toThrow("agent error: session not found");
  });

  it("exit with a client attached sends EXIT and removes the session", async () => {
    const s = await client.openTtySession(["sh", "-c", "echo bye; exit 7"]);
    const r = await readUntil(sessionIterator(s), "never");
    expect(r.output).toContain("bye");
    expect(r.exit).toBe(7);
    expect((await client.listSessions()).some((x) => x.session_id === s.sessionId)).toBe(false);
  });

  it("an exited detached session can be reattached for its scrollback and exit code", async () => {
    // The process exits only once the test has seen the detach: otherwise, on a loaded machine,
    // it may exit while the client is still attached (which ends the session, correctly).
    const go = join(agent.workspace, "go-reattach");
    const s = await client.openTtySession([
      "sh",
      "-c",
      `read x; echo finished-$x; while [ ! -e ${go} ]; do sleep 0.05; done; exit 3`,
    ]);
    const id = s.sessionId;
    await s.write("ok\r");
    s.detach();
    await eventually(
      () => client.listSessions(),
      (l) => l.some((x) => x.session_id === id && !x.attached),
    );
    writeFileSync(go, "");
    const listed = await eventually(
      () => client.listSessions(),
      (l) => l.some((x) => x.session_id === id && !x.running),
    );
    expect(listed.find((x) => x.session_id === id)).toMatchObject({
      running: false,
      exit_code: 3,
      attached: false,
    });
    const again = await client.attachSession(id);
    const r = await readUntil(sessionIterator(again), "never");
    expect(r.output).toContain("finished-ok");
    expect(r.exit).toBe(3);
    expect((await client.listSessions()).some((x) => x.session_id === id)).toBe(false);
  });

  it("reports the exit and the last output even while a background process keeps the TTY open", async () => {
    // The orphan ignores SIGHUP and keeps the terminal's child side open, so the PTY never reaches
    // EOF: the exit is still reported, after the output, once the output has gone quiet.
    const pidFile = join(agent.workspace, "held-open.pid");
    const s = await client.openTtySession([
      "sh",
      "-c",
      `(trap '' HUP; exec sleep 120) & echo $! > ${pidFile}; echo last-words; exit 6`,
    ]);
    try {
      const r = await readUntil(sessionIterator(s), "never");
      expect(r.output).toContain("last-words");
      expect(r.exit).toBe(6);
    } finally {
      const pid = Number(readFileSync(pidFile, "utf8"));
      if (pid > 0) process.kill(pid, "SIGKILL");
    }
  });

  it("scrollback overflow keeps exactly the last 64 KiB, oldest first", async () => {
    // 100,000 numbered lines of 8 bytes: "%07d\n", then a marker.
    const s = await client.openTtySession([
      "sh",
      "-c",
      "stty -onlcr; seq -f '%07g' 1 100000; echo END-MARK; sleep 300",
    ]);
    const id = s.sessionId;
    await readUntil(sessionIterator(s), "END-MARK\n", 20_000);
    s.detach();
    const raw = await rawConnect(agent.control, agent.token);
    raw.sendJson(FrameType.EXEC_REQ, { argv: [], session_id: id });
    expect((await raw.read())!.type).toBe(FrameType.SESSION_INFO);
    const replay = (await raw.read())!;
    raw.close();
    expect(replay.type).toBe(FrameType.STDOUT);
    expect(replay.payload.byteLength).toBe(64 * 1024);
    const text = replay.payload.toString("latin1");
    expect(text.endsWith("0100000\nEND-MARK\n")).toBe(true);
    // The replay is a contiguous tail: every complete line follows its predecessor.
    const lines = text.split("\n").slice(1, -2);
    for (let i = 1; i < lines.length; i++) expect(Number(lines[i])).toBe(Number(lines[i - 1]) + 1);
  });

  it("max_idle_sec kills a detached session; 0 keeps it alive", async () => {
    const idle = await client.openTtySession(["sleep", "300"], { maxIdleSec: 1 });
    const keep = await client.openTtySession(["sleep", "300"], { maxIdleSec: 0 });
    idle.detach();
    keep.detach();
    const list = await eventually(
      () => client.listSessions(),
      (l) => l.find((x) => x.session_id === idle.sessionId)?.running === false,
    );
    expect(list.find((x) => x.session_id === idle.sessionId)).toMatchObject({
      running: false,
      exit_code: 137,
    });
    expect(list.find((x) => x.session_id === keep.sessionId)).toMatchObject({ running: true });
  });

  it("activity counts running and attached sessions", async () => {
    const before = await client.activity();
    const s = await client.openTtySession(["sleep", "300"]);
    const during = await client.activity();
    expect(during.active_sessions).toBe(before.active_sessions + 1);
    expect(during.attached_sessions).toBe(before.attached_sessions + 1);
    expect(during.last_activity_unix).toBeGreaterThanOrEqual(before.last_activity_unix);
    s.detach();
    const after = await eventually(
      () => client.activity(),
      (a) => a.attached_sessions === before.attached_sessions,
    );
    expect(after.attached_sessions).toBe(before.attached_sessions);
  });

  it("allows at most 20 sessions", async () => {
    // Exited sessions of earlier tests linger (and count) until their 30 s linger ends, which on
    // a loaded machine can fall in the middle of this test and free a slot: collect them first.
    for (const s of await client.listSessions()) {
      if (s.running) continue;
      const again = await client.attachSession(s.session_id).catch(() => undefined);
      if (again !== undefined) for await (const _ of again) void _;
    }
    const existing = (await client.listSessions()).length;
    const opened: SessionConnection[] = [];
    try {
      for (let i = existing; i < 20; i++) opened.push(await client.openPipedSession(["sleep", "300"]));
      await expect(client.openTtySession(["sleep", "300"])).rejects.toThrow(
        "agent error: session limit exceeded",
      );
    } finally {
      for (const s of opened) {
        await client.killSession(s.sessionId);
        s.detach();
      }
    }
    // Killed sessions linger (attachable) until a client collects them; attaching removes them.
    for (const s of opened) {
      const again = await client.attachSession(s.sessionId).catch(() => undefined);
      if (again !== undefined) for await (const _ of again) void _;
    }
  });
});

describe("piped sessions", () => {
  it("merges stderr into the output, keeps scrollback across a detach, and holds stdin open", async () => {
    const s = await client.openPipedSession([
      "sh",
      "-c",
      "echo to-err >&2; while read l; do echo got:$l; done",
    ]);
    expect(s.info.tty).toBe(false);
    const it = sessionIterator(s);
    await readUntil(it, "to-err");
    await s.write("one\n");
    await readUntil(it, "got:one");
    s.resize(10, 10); // ignored, must not break anything
    s.detach();
    const again = await client.attachSession(s.sessionId);
    const it2 = sessionIterator(again);
    const replay = await readUntil(it2, "got:one");
    expect(replay.output).toContain("to-err");
    await again.write("two\n");
    await readUntil(it2, "got:two");
    again.detach();
  });

  it("reports the process exit and a non-TTY listing", async () => {
    const s = await client.openPipedSession(["sh", "-c", "read x; exit 5"]);
    const listed = (await client.listSessions()).find((x) => x.session_id === s.sessionId);
    expect(listed).toMatchObject({ tty: false, running: true, attached: true });
    await s.write("\n");
    expect((await readUntil(sessionIterator(s), "never")).exit).toBe(5);
  });

  it("idle timeout kills a detached piped session", async () => {
    const s = await client.openPipedSession(["sleep", "300"], { maxIdleSec: 1 });
    s.detach();
    const list = await eventually(
      () => client.listSessions(),
      (l) => l.find((x) => x.session_id === s.sessionId)?.running === false,
    );
    expect(list.find((x) => x.session_id === s.sessionId)?.running).toBe(false);
  });
});
