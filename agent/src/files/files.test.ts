import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type AgentClient, createAgentClient } from "@bhatti/agent-client";
import { FrameType } from "@bhatti/agent-protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgentProcess } from "../testing/agent-process.js";
import { rawConnect, textOf } from "../testing/raw-connection.js";

let agent: AgentProcess;
let client: AgentClient;
let dir: string;
let n = 0;
const fresh = (name = "f") => join(dir, `${name}-${++n}`);

beforeAll(async () => {
  agent = await startAgentProcess({ user: "1000" });
  dir = agent.workspace;
  client = createAgentClient({ control: agent.control, forward: agent.forward, token: agent.token });
});

afterAll(async () => {
  client?.close();
  await agent?.stop();
});

const tempFilesIn = (d: string) => readdirSync(d).filter((f) => f.includes(".bhatti-tmp"));

describe("file write and read", () => {
  it("round-trips text, owned by uid 1000 with the requested mode", async () => {
    const p = fresh();
    await client.writeFile(p, "hello\nworld\n", { mode: "0600" });
    expect(readFileSync(p, "utf8")).toBe("hello\nworld\n");
    const st = statSync(p);
    expect(st.mode & 0o777).toBe(0o600);
    expect([st.uid, st.gid]).toEqual([1000, 1000]);
    const r = await client.readFileBuffer(p);
    expect(r).toMatchObject({ size: 12, mode: "0600" });
    expect(r.data.toString()).toBe("hello\nworld\n");
  });

  it("round-trips binary data and a large (5 MiB) file", async () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const p = fresh("bin");
    await client.writeFile(p, all);
    expect((await client.readFileBuffer(p)).data.equals(all)).toBe(true);
    const big = randomBytes(5 * 1024 * 1024);
    const q = fresh("big");
    await client.writeFile(q, big);
    expect(readFileSync(q).equals(big)).toBe(true);
    expect((await client.readFileBuffer(q)).data.equals(big)).toBe(true);
  });

  it("writes zero bytes, overwrites, creates parent dirs owned by the user, handles unicode names", async () => {
    const z = fresh("zero");
    await client.writeFile(z, "");
    expect(statSync(z).size).toBe(0);
    expect((await client.readFileBuffer(z)).data.byteLength).toBe(0);
    await client.writeFile(z, "second");
    expect(readFileSync(z, "utf8")).toBe("second");
    const nested = join(dir, `deep-${n}`, "a", "b", "c.txt");
    await client.writeFile(nested, "x");
    expect(readFileSync(nested, "utf8")).toBe("x");
    expect(statSync(join(dir, `deep-${n}`, "a")).uid).toBe(1000);
    const uni = join(dir, "ünïcødé 文件 🚀.txt");
    await client.writeFile(uni, "u");
    expect((await client.listDir(dir)).some((e) => e.name === "ünïcødé 文件 🚀.txt")).toBe(true);
  });

  it("the written file is readable by the user's commands right away", async () => {
    const p = fresh();
    await client.writeFile(p, "from-host");
    expect((await client.exec(["cat", p])).stdout.toString()).toBe("from-host");
  });

  it("never shows a concurrent reader a partial file (atomic rename)", async () => {
    const p = fresh("atomic");
    const a = Buffer.alloc(256 * 1024, "a");
    const b = Buffer.alloc(256 * 1024, "b");
    await client.writeFile(p, a);
    let reads = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const data = readFileSync(p);
        expect(data.byteLength).toBe(a.byteLength);
        expect(data.equals(a) || data.equals(b)).toBe(true);
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 0; i < 20; i++) await client.writeFile(p, i % 2 === 0 ? b : a);
    stop = true;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it("concurrent writes: different files all land; the same file ends as one of the writes", async () => {
    const paths = Array.from({ length: 10 }, () => fresh("conc"));
    await Promise.all(paths.map((p, i) => client.writeFile(p, `content-${i}`)));
    for (const [i, p] of paths.entries()) expect(readFileSync(p, "utf8")).toBe(`content-${i}`);
    const same = fresh("same");
    const bodies = Array.from({ length: 8 }, (_, i) => Buffer.alloc(100_000, String(i)));
    await Promise.all(bodies.map((b) => client.writeFile(same, b)));
    const final = readFileSync(same);
    expect(bodies.some((b) => b.equals(final))).toBe(true);
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it("rapid write/read cycles stay consistent", async () => {
    const p = fresh("rapid");
    for (let i = 0; i < 30; i++) {
      await client.writeFile(p, `v${i}`);
      expect((await client.readFileBuffer(p)).data.toString()).toBe(`v${i}`);
    }
  });

  it("a dropped connection during a write leaves no temp file and keeps the old content", async () => {
    const p = fresh("dropped");
    writeFileSync(p, "old");
    const raw = await rawConnect(agent.control, agent.token);
    raw.sendJson(FrameType.FILE_WRITE_REQ, { path: p, mode: "0644", size: 1000 });
    raw.send(FrameType.STDIN, Buffer.alloc(400, "n"));
    await new Promise((r) => setTimeout(r, 50));
    raw.socket.end(); // half-close: the agent can still say why it failed
    const reply = await raw.read();
    expect(reply?.type).toBe(FrameType.ERROR);
    expect(textOf(reply)).toBe("connection lost after 400/1000 bytes");
    raw.close();
    expect(readFileSync(p, "utf8")).toBe("old");
    expect(tempFilesIn(dir)).toEqual([]);
  });

  it("rejects a negative size, an oversize file, a directory target, a regular-file parent", async () => {
    await expect(client.writeFileStream(fresh(), (async function* () {})(), -1)).rejects.toThrow(
      "agent error: file size must be >= 0",
    );
    await expect(
      client.writeFileStream(fresh(), (async function* () {})(), 200 * 1024 * 1024),
    ).rejects.toThrow(/agent error: file too large: /);
    const d = fresh("adir");
    mkdirSync(d);
    await expect(client.writeFile(d, "x")).rejects.toThrow(`agent error: ${d} is a directory`);
    const f = fresh("afile");
    writeFileSync(f, "x");
    await expect(client.writeFile(join(f, "child.txt"), "x")).rejects.toThrow(/not a directory/);
    expect(tempFilesIn(dir)).toEqual([]);
  });
});

describe("file read errors and truncation", () => {
  it("reports a missing file, a directory and a non-regular file", async () => {
    await expect(client.readFileBuffer(join(dir, "missing"))).rejects.toThrow(
      `agent error: open ${join(dir, "missing")}: no such file or directory`,
    );
    await expect(client.readFileBuffer(dir)).rejects.toThrow(`agent error: ${dir} is a directory`);
    const fifo = fresh("fifo");
    execFileSync("mkfifo", [fifo]);
    await expect(client.readFileBuffer(fifo)).rejects.toThrow(`agent error: ${fifo} is not a regular file`);
  });

  it("offset, limit and max_bytes cut by lines; max_bytes may cut mid-line; size is the whole file", async () => {
    const p = fresh("lines");
    writeFileSync(p, "line 1\nline 2\nline 3\nline 4\n");
    const read = async (o: { offset?: number; limit?: number; maxBytes?: number }) => {
      const r = await client.readFileBuffer(p, o);
      expect(r.size).toBe(28);
      return r.data.toString();
    };
    expect(await read({ maxBytes: 10 })).toBe("line 1\nlin");
    expect(await read({ limit: 2 })).toBe("line 1\nline 2\n");
    expect(await read({ offset: 3 })).toBe("line 3\nline 4\n");
    expect(await read({ offset: 2, limit: 2 })).toBe("line 2\nline 3\n");
    expect(await read({ offset: 2, limit: 3, maxBytes: 9 })).toBe("line 2\nli");
    expect(await read({ offset: 99 })).toBe("");
    expect(await read({ maxBytes: 7 })).toBe("line 1\n");
    expect(await read({})).toBe("line 1\nline 2\nline 3\nline 4\n");
  });

  it("truncated reads of a 10,000-line file stop early", async () => {
    const p = fresh("big-lines");
    writeFileSync(p, Array.from({ length: 10_000 }, (_, i) => `row ${i + 1}\n`).join(""));
    const r = await client.readFileBuffer(p, { offset: 5000, limit: 3 });
    expect(r.data.toString()).toBe("row 5000\nrow 5001\nrow 5002\n");
  });

  it("a reader that aborts mid-stream stops the read and the agent keeps serving", async () => {
    const p = fresh("abort-read");
    writeFileSync(p, randomBytes(8 * 1024 * 1024));
    const controller = new AbortController();
    const stream = await client.readFile(p, { signal: controller.signal });
    let got = 0;
    await expect(
      (async () => {
        for await (const chunk of stream.content) {
          got += chunk.byteLength;
          if (got > 256 * 1024) controller.abort();
        }
      })(),
    ).rejects.toThrow(/abort/i);
    expect(got).toBeLessThan(8 * 1024 * 1024);
    expect((await client.exec(["true"])).exitCode).toBe(0);
  });
});

describe("stat and ls", () => {
  it("stat follows symlinks and gives a 4-digit octal mode", async () => {
    const p = fresh("st");
    writeFileSync(p, "12345", { mode: 0o640 });
    const link = fresh("link");
    symlinkSync(p, link);
    const info = await client.stat(link);
    expect(info).toMatchObject({ name: link.split("/").pop(), size: 5, mode: "0640", is_dir: false });
    expect(info.mtime).toBe(Math.floor(statSync(p).mtimeMs / 1000));
    expect((await client.stat(dir)).is_dir).toBe(true);
    await expect(client.stat(join(dir, "nope"))).rejects.toThrow("no such file or directory");
  });

  it("lists a directory with lstat entries; an empty one is []; a file is an error", async () => {
    const d = fresh("lsdir");
    mkdirSync(d);
    expect(await client.listDir(d)).toEqual([]);
    writeFileSync(join(d, "a.txt"), "aa");
    mkdirSync(join(d, "sub"));
    symlinkSync("/nonexistent-target", join(d, "dangling"));
    const entries = await client.listDir(d);
    expect(entries.map((e) => e.name).sort()).toEqual(["a.txt", "dangling", "sub"]);
    expect(entries.find((e) => e.name === "sub")).toMatchObject({ is_dir: true });
    expect(entries.find((e) => e.name === "a.txt")).toMatchObject({ size: 2, is_dir: false });
    await expect(client.listDir(join(d, "a.txt"))).rejects.toThrow(
      `agent error: ${join(d, "a.txt")} is not a directory`,
    );
  });

  it("caps a listing at 10,000 entries plus a sentinel", async () => {
    const d = fresh("many");
    mkdirSync(d);
    for (let i = 0; i < 10_050; i++) writeFileSync(join(d, `e${i}`), "");
    const entries = await client.listDir(d);
    expect(entries).toHaveLength(10_001);
    expect(entries.at(-1)).toMatchObject({
      name: "... truncated at 10000 entries (10050 total)",
      is_dir: false,
    });
  }, 60_000);
});

describe("bad requests", () => {
  it("malformed JSON gets 'bad request' and the agent keeps serving", async () => {
    for (const type of [
      FrameType.FILE_READ_REQ,
      FrameType.FILE_WRITE_REQ,
      FrameType.FILE_STAT_REQ,
      FrameType.FILE_LS_REQ,
    ]) {
      const raw = await rawConnect(agent.control, agent.token);
      raw.send(type, "{not json");
      const frames = await raw.readAll();
      expect(frames).toHaveLength(1);
      expect(frames[0]!.type).toBe(FrameType.ERROR);
      expect(textOf(frames[0])).toMatch(/^bad request: /);
      raw.close();
    }
    const raw = await rawConnect(agent.control, agent.token);
    raw.send(FrameType.EXEC_REQ, "[1,2");
    expect(textOf(await raw.read())).toMatch(/^bad exec request: /);
    raw.close();
    expect((await client.exec(["true"])).exitCode).toBe(0);
  });
});
