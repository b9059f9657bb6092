import { execFileSync } from "node:child_process";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RUNSC_PATH } from "../engine-conformance/gvisor-factory.js";
import { type Product, startProduct } from "../thermal/product-harness.js";
import { existsSync } from "node:fs";

const bhattiBin = join(fileURLToPath(new URL("../..", import.meta.url)), "cli/dist/bhatti.mjs");

interface Sandbox {
  id: string;
  name: string;
  status: string;
  thermal?: string;
}

/** A streamed exec through the relay: NDJSON lines with what had arrived when each came. */
async function streamExec(product: Product, id: string, cmd: string[]) {
  const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
  const body = Buffer.from(JSON.stringify({ cmd }));
  return new Promise<{
    status: number;
    type: string;
    lines: { line: Record<string, unknown>; endedBefore: boolean }[];
  }>((resolve, reject) => {
    const req = request(
      {
        socketPath: ep.path,
        method: "POST",
        path: `/sandboxes/${id}/exec`,
        headers: {
          authorization: `Bearer ${product.userKey}`,
          accept: "application/x-ndjson",
          "content-type": "application/json",
          "content-length": String(body.byteLength),
        },
      },
      (res) => {
        const lines: { line: Record<string, unknown>; endedBefore: boolean }[] = [];
        let buf = "";
        let ended = false;
        res.on("data", (d: Buffer) => {
          buf += d.toString();
          let nl = buf.indexOf("\n");
          while (nl >= 0) {
            lines.push({ line: JSON.parse(buf.slice(0, nl)) as Record<string, unknown>, endedBefore: ended });
            buf = buf.slice(nl + 1);
            nl = buf.indexOf("\n");
          }
        });
        res.on("end", () => {
          ended = true;
          resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), lines });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** A request with a raw body through the relay (product.http sends JSON only). */
async function rawRequest(product: Product, method: string, path: string, body: string) {
  const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      {
        socketPath: ep.path,
        method,
        path,
        headers: {
          authorization: `Bearer ${product.userKey}`,
          "content-length": String(Buffer.byteLength(body)),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => {
          text += d.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** A request with a binary body whose answer is kept as bytes. */
async function bytesRequest(product: Product, method: string, path: string, body?: Buffer) {
  const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
  return new Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }>(
    (resolve, reject) => {
      const req = request(
        {
          socketPath: ep.path,
          method,
          path,
          headers: {
            authorization: `Bearer ${product.userKey}`,
            ...(body !== undefined ? { "content-length": String(body.byteLength) } : {}),
          },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (d: Buffer) => parts.push(d));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), headers: res.headers }),
          );
        },
      );
      req.on("error", reject);
      req.end(body);
    },
  );
}

/**
 * A PUT that announces `declared` bytes, sends `sent` of them and then disconnects. Resolves once
 * the gateway has seen the whole part sent (the socket wrote it) and the connection is closed.
 */
async function truncatedPut(product: Product, path: string, declared: number, sent: number): Promise<void> {
  const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
  await new Promise<void>((resolve, reject) => {
    const socket = connect(ep.path);
    socket.on("error", reject);
    socket.on("close", () => resolve());
    socket.on("connect", () => {
      socket.write(
        `PUT ${path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${product.userKey}\r\n` +
          `content-length: ${declared}\r\n\r\n`,
      );
      socket.write(Buffer.alloc(sent, "p"), () => socket.destroy());
    });
  });
}

/** Every byte value, repeated: a binary body whose every byte is checked. */
const binaryOf = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + 7) % 256));

const tmux = (...args: string[]) => execFileSync("tmux", args, { encoding: "utf8" });

async function waitForPane(session: string, pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", session);
    if (pattern.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`pane ${session} never showed ${pattern}:\n${text}`);
    await sleep(100);
  }
}

const runnable = existsSync(RUNSC_PATH);

// Real sandboxes (gvisor, busybox image) behind the whole product, inside a stand-in netns.
describe.skipIf(!runnable)("gateway with sandboxes", () => {
  let product: Product;
  let otherKey: string;
  let sb: Sandbox;
  const tmuxSessions: string[] = [];

  beforeAll(async () => {
    product = await startProduct({ flags: [] });
    const other = await product.http("POST", "/users", { body: { name: `other-${product.env.runId}` } });
    otherKey = other.json<{ api_key: string }>().api_key;
    const created = await product.http("POST", "/sandboxes", {
      body: { name: "gw1", labels: { team: "a" } },
    });
    if (created.status !== 201)
      throw new Error(`create: ${created.status} ${created.text}\n${product.output()}`);
    sb = created.json<Sandbox>();
  }, 240_000);

  afterAll(async () => {
    for (const s of tmuxSessions) {
      try {
        tmux("kill-session", "-t", s);
      } catch {
        // already gone
      }
    }
    await product?.dispose();
  }, 240_000);

  it("creates idempotently by name, lists with label filters, gets and patches", async () => {
    expect(sb.status).toBe("running");
    const again = await product.http("POST", "/sandboxes", { body: { name: "gw1" } });
    expect(again.status).toBe(200);
    expect(again.headers["x-bhatti-existing"]).toBe("true");
    expect(again.json<Sandbox>().id).toBe(sb.id);
    const filtered = await product.http("GET", "/sandboxes?label=team=a");
    expect(filtered.json<Sandbox[]>().map((s) => s.id)).toEqual([sb.id]);
    expect((await product.http("GET", "/sandboxes?label=team=b")).json()).toEqual([]);
    const got = await product.http("GET", "/sandboxes/gw1");
    expect(got.status).toBe(200);
    expect(got.json<Sandbox>()).toMatchObject({ id: sb.id, status: "running" });
    const patched = await product.http("PATCH", `/sandboxes/${sb.id}`, {
      body: { labels_add: { tier: "x" } },
    });
    expect(patched.json<{ labels: Record<string, string> }>().labels).toEqual({ team: "a", tier: "x" });
  });

  it("hides the sandbox from another user on every route (404)", async () => {
    const as = { headers: { authorization: `Bearer ${otherKey}` } };
    expect((await product.http("GET", "/sandboxes", as)).json()).toEqual([]);
    const routes: [string, string, unknown?][] = [
      ["GET", `/sandboxes/${sb.id}`],
      ["GET", "/sandboxes/gw1"],
      ["PATCH", `/sandboxes/${sb.id}`, { keep_hot: true }],
      ["POST", `/sandboxes/${sb.id}/exec`, { cmd: ["true"] }],
      ["GET", `/sandboxes/${sb.id}/files?path=/etc/hostname`],
      ["HEAD", `/sandboxes/${sb.id}/files?path=/etc/hostname`],
      ["GET", `/sandboxes/${sb.id}/sessions`],
      ["POST", `/sandboxes/${sb.id}/stop`],
      ["POST", `/sandboxes/${sb.id}/start`],
      ["DELETE", `/sandboxes/${sb.id}`],
    ];
    for (const [method, path, body] of routes) {
      const res = await product.http(method, path, body === undefined ? as : { ...as, body });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    // The owner still has it, untouched.
    expect((await product.http("GET", `/sandboxes/${sb.id}`)).status).toBe(200);
  });

  it("runs exec as JSON, streams NDJSON line by line, and passes exit codes", async () => {
    const res = await product.http("POST", `/sandboxes/${sb.id}/exec`, {
      body: { cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"] },
    });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ exit_code: 3, stdout: "out\n", stderr: "err\n" });

    // A REST exec sends no input: the command's stdin is /dev/null, as `docker exec` without -i.
    const stdin = await product.http("POST", `/sandboxes/${sb.id}/exec`, {
      body: { cmd: ["sh", "-c", "readlink /proc/self/fd/0; cat; echo end"] },
    });
    expect(stdin.json()).toEqual({ exit_code: 0, stdout: "/dev/null\nend\n", stderr: "" });

    const streamed = await streamExec(product, sb.id, ["sh", "-c", "echo first; sleep 2; echo second"]);
    expect(streamed.status).toBe(200);
    expect(streamed.type).toBe("application/x-ndjson");
    expect(streamed.lines.map((l) => l.line)).toEqual([
      { type: "stdout", data: "first\n" },
      { type: "stdout", data: "second\n" },
      { type: "exit", exit_code: 0 },
    ]);
    // Each line was flushed on its own: "first" arrived before "second" was even written.
    const firstAt = streamed.lines.findIndex((l) => l.line["data"] === "first\n");
    expect(firstAt).toBe(0);

    const detached = await product.http("POST", `/sandboxes/${sb.id}/exec`, {
      body: { cmd: ["sh", "-c", "echo bg > /tmp/bg.txt"], detach: true, output_file: "/tmp/bg.log" },
    });
    expect(detached.json()).toMatchObject({ detached: true, output_file: "/tmp/bg.log" });
    expect(detached.json<{ pid: number }>().pid).toBeGreaterThan(0);
  });

  it("kills the whole process tree at the exec deadline", async () => {
    const res = await product.http("POST", `/sandboxes/${sb.id}/exec`, {
      body: { cmd: ["sh", "-c", "sleep 997 & sleep 998 & sleep 999"], timeout_sec: 2 },
    });
    expect(res.status).toBe(200);
    const body = res.json<{ exit_code: number; stderr: string }>();
    expect(body.exit_code).toBe(137);
    expect(body.stderr).toContain("timed out after 2s");
    let left = "";
    for (let i = 0; i < 30; i++) {
      const ps = await product.http("POST", `/sandboxes/${sb.id}/exec`, {
        body: { cmd: ["ps", "-o", "args"] },
      });
      left = ps
        .json<{ stdout: string }>()
        .stdout.split("\n")
        .filter((l) => /sleep 99[789]/.test(l))
        .join("\n");
      if (left === "") break;
      await sleep(100);
    }
    expect(left).toBe("");
  });

  it("reads, writes and stats files with v1 headers", async () => {
    const content = "line1\nline2\nline3\n";
    const put = await rawRequest(
      product,
      "PUT",
      `/sandboxes/${sb.id}/files?path=/tmp/gw/f.txt&mode=0600`,
      content,
    );
    expect(put.status).toBe(200);
    expect(JSON.parse(put.text)).toEqual({ status: "ok" });
    const full = await product.http("GET", `/sandboxes/${sb.id}/files?path=/tmp/gw/f.txt`);
    expect(full.status).toBe(200);
    expect(full.text).toBe(content);
    const stat = await product.http("HEAD", `/sandboxes/${sb.id}/files?path=/tmp/gw/f.txt`);
    expect(stat.headers["x-file-mode"]).toBe("0600");
    expect(stat.headers["x-file-isdir"]).toBe("false");
    // The CLI runs inside the netns (where the gateway listens), stdin from a pipe.
    execFileSync(
      "nsenter",
      [
        `--net=${product.env.hostNetnsPath}`,
        "--",
        process.execPath,
        bhattiBin,
        "file",
        "write",
        "gw1",
        "/tmp/gw/cli.txt",
      ],
      {
        input: "via cli",
        env: { ...process.env, BHATTI_CLIENT_CONFIG: join(product.env.stateDir, "client-user.yaml") },
      },
    );
    const cliWritten = await product.http("GET", `/sandboxes/${sb.id}/files?path=/tmp/gw/cli.txt`);
    expect(cliWritten.text).toBe("via cli");
    const viaExec = await product.http("POST", `/sandboxes/${sb.id}/exec`, {
      body: { cmd: ["sh", "-c", `printf '${content.replaceAll("\n", "\\n")}' > /tmp/gw/g.txt`] },
    });
    expect(viaExec.status).toBe(200);
    const g = await product.http("GET", `/sandboxes/${sb.id}/files?path=/tmp/gw/g.txt`);
    expect(g.text).toBe(content);
    expect(g.headers["x-file-size"]).toBe(String(content.length));
    expect(g.headers["content-length"]).toBe(String(content.length));
    const part = await product.http("GET", `/sandboxes/${sb.id}/files?path=/tmp/gw/g.txt&offset=2&limit=1`);
    expect(part.text).toBe("line2\n");
    expect(part.headers["x-file-size"]).toBe(String(content.length));
    expect(part.headers["content-length"]).toBeUndefined();
    const head = await product.http("HEAD", `/sandboxes/${sb.id}/files?path=/tmp/gw`);
    expect(head.headers["x-file-isdir"]).toBe("true");
    expect((await product.http("HEAD", `/sandboxes/${sb.id}/files?path=/nope`)).status).toBe(404);
    const ls = await product.http("GET", `/sandboxes/${sb.id}/files?path=/tmp/gw&ls=true`);
    expect(
      ls
        .json<{ name: string }[]>()
        .map((f) => f.name)
        .sort(),
    ).toEqual(["cli.txt", "f.txt", "g.txt"]);
    const sessions = await product.http("GET", `/sandboxes/${sb.id}/sessions`);
    expect(Array.isArray(sessions.json())).toBe(true);
  });

  it("reads whole files below, at and above the one-write size byte for byte, and empty ones", async () => {
    // Up to 64 KiB the gateway buffers the agent's chunks and answers in one write; above, it streams.
    for (const size of [0, 1024, 65_535, 65_536, 65_537, 300_000]) {
      const content = Array.from({ length: size }, (_, i) => String.fromCharCode(97 + ((i * 7) % 26))).join(
        "",
      );
      const path = `/tmp/gw-sizes/${size}.txt`;
      const put = await rawRequest(product, "PUT", `/sandboxes/${sb.id}/files?path=${path}`, content);
      expect(put.status).toBe(200);
      const read = await product.http("GET", `/sandboxes/${sb.id}/files?path=${path}`);
      expect(read.status).toBe(200);
      expect(read.headers["content-length"]).toBe(String(size));
      expect(read.headers["x-file-size"]).toBe(String(size));
      expect(read.text.length).toBe(size);
      expect(read.text === content).toBe(true);
    }
    const missing = await product.http("GET", `/sandboxes/${sb.id}/files?path=/tmp/gw-sizes/none.txt`);
    expect(missing.status).toBe(404);
  });

  it("writes files of every size byte for byte (around 64 KiB and past it), with their mode, and empty ones", async () => {
    // The gateway streams the body to the agent (FILE_WRITE_REQ, then STDIN frames as it arrives);
    // the agent writes a temp file and renames it over the target.
    for (const [size, mode] of [
      [0, "0600"],
      [1, "0644"],
      [1024, "0640"],
      [65_535, "0755"],
      [65_536, "0600"],
      [65_537, "0644"],
      [300_000, "0640"],
    ] as const) {
      const content = binaryOf(size);
      const path = `/tmp/gw-writes/${size}.bin`;
      const put = await bytesRequest(
        product,
        "PUT",
        `/sandboxes/${sb.id}/files?path=${path}&mode=${mode}`,
        content,
      );
      expect(put.status, put.body.toString()).toBe(200);
      expect(JSON.parse(put.body.toString())).toEqual({ status: "ok" });
      const read = await bytesRequest(product, "GET", `/sandboxes/${sb.id}/files?path=${path}`);
      expect(read.status).toBe(200);
      expect(read.headers["x-file-size"]).toBe(String(size));
      expect(read.headers["x-file-mode"]).toBe(mode);
      expect(read.body.byteLength).toBe(size);
      expect(read.body.equals(content)).toBe(true);
    }
    // An empty body replaces a file that had content.
    const path = "/tmp/gw-writes/1024.bin";
    expect(
      (await bytesRequest(product, "PUT", `/sandboxes/${sb.id}/files?path=${path}`, Buffer.alloc(0))).status,
    ).toBe(200);
    const emptied = await bytesRequest(product, "GET", `/sandboxes/${sb.id}/files?path=${path}`);
    expect(emptied.headers["x-file-size"]).toBe("0");
    expect(emptied.body.byteLength).toBe(0);
    // Error statuses: a directory, no path, another user's sandbox.
    const onDir = await bytesRequest(
      product,
      "PUT",
      `/sandboxes/${sb.id}/files?path=/tmp/gw-writes`,
      binaryOf(10),
    );
    expect(onDir.status).toBe(400);
    const noPath = await bytesRequest(product, "PUT", `/sandboxes/${sb.id}/files`, binaryOf(10));
    expect(noPath.status).toBe(400);
    const otherUsers = await new Promise<number>((resolve, reject) => {
      void product.env.options.dialer.endpoint("127.0.0.1", product.port).then((ep) => {
        const req = request(
          {
            socketPath: (ep as { path: string }).path,
            method: "PUT",
            path: `/sandboxes/${sb.id}/files?path=/tmp/gw-writes/other.bin`,
            headers: { authorization: `Bearer ${otherKey}`, "content-length": "4" },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end("abcd");
      }, reject);
    });
    expect(otherUsers).toBe(404);
  });

  it("an upload that stops short of its Content-Length leaves the old file and no temp file", async () => {
    const dir = "/tmp/gw-short";
    const ls = async () => {
      const r = await product.http("GET", `/sandboxes/${sb.id}/files?path=${dir}&ls=true`);
      expect(r.status).toBe(200);
      return r
        .json<{ name: string }[]>()
        .map((f) => f.name)
        .sort();
    };
    /** The agent removes a streamed upload's temp file when its connection drops: wait for that. */
    const namesWithoutTemp = async () => {
      const deadline = Date.now() + 20_000;
      let names = await ls();
      while (names.some((n) => n.includes(".bhatti-tmp-")) && Date.now() < deadline) {
        await sleep(50);
        names = await ls();
      }
      return names;
    };
    // A small body, exactly 64 KiB, and a larger one, each cut short by a client that goes away.
    for (const [declared, sent] of [
      [1024, 500],
      [65_536, 65_535],
      [300_000, 100_000],
    ] as const) {
      const path = `${dir}/f-${declared}.bin`;
      const old = binaryOf(100);
      expect((await bytesRequest(product, "PUT", `/sandboxes/${sb.id}/files?path=${path}`, old)).status).toBe(
        200,
      );
      await truncatedPut(product, `/sandboxes/${sb.id}/files?path=${path}`, declared, sent);
      const names = await namesWithoutTemp();
      expect(names.filter((n) => n.startsWith(`f-${declared}.bin`))).toEqual([`f-${declared}.bin`]);
      const read = await bytesRequest(product, "GET", `/sandboxes/${sb.id}/files?path=${path}`);
      expect(read.status).toBe(200);
      expect(read.body.equals(old)).toBe(true);
      // The same upload, whole, still goes through.
      const full = binaryOf(declared);
      expect(
        (await bytesRequest(product, "PUT", `/sandboxes/${sb.id}/files?path=${path}`, full)).status,
      ).toBe(200);
      const after = await bytesRequest(product, "GET", `/sandboxes/${sb.id}/files?path=${path}`);
      expect(after.body.equals(full)).toBe(true);
    }
    expect(await namesWithoutTemp()).toEqual(["f-1024.bin", "f-300000.bin", "f-65536.bin"]);
  });

  it("CLI: exec streams and passes the exit code, stdin goes through, file and ps work", async () => {
    const code = await product.cli(["exec", "gw1", "--", "sh", "-c", "echo hi; exit 7"]);
    expect(code.code).toBe(7);
    expect(code.stdout).toBe("hi\n");
    const json = await product.cli(["exec", "gw1", "--json", "--", "sh", "-c", "echo j"]);
    expect(JSON.parse(json.stdout)).toEqual({ exit_code: 0, stdout: "j\n", stderr: "" });
    const piped = execFileSync(
      "sh",
      [
        "-c",
        `printf 'from-stdin' | nsenter --net=${product.env.hostNetnsPath} -- ${process.execPath} ${bhattiBin} exec gw1 -- cat`,
      ],
      {
        env: { ...process.env, BHATTI_CLIENT_CONFIG: join(product.env.stateDir, "client-user.yaml") },
        encoding: "utf8",
      },
    );
    expect(piped).toBe("from-stdin");
    const read = await product.cli(["file", "read", "gw1", "/tmp/gw/g.txt"]);
    expect(read.stdout).toBe("line1\nline2\nline3\n");
    const ps = await product.cli(["ps", "gw1", "--json"]);
    expect(ps.code).toBe(0);
    const list = await product.cli(["list", "--json"]);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ name: "gw1", status: "running" })]);
  });

  it("shell: Ctrl+\\ detaches, the next shell reattaches and replays the scrollback, exit closes 1000", async () => {
    const env = `BHATTI_CLIENT_CONFIG=${join(product.env.stateDir, "client-user.yaml")}`;
    const shellCmd = `env ${env} nsenter --net=${product.env.hostNetnsPath} -- ${process.execPath} ${bhattiBin} shell gw1; echo SHELL-EXIT=$?; sleep 60`;
    const first = `bt-sh1-${product.env.runId}`;
    const second = `bt-sh2-${product.env.runId}`;
    tmuxSessions.push(first, second);
    tmux("new-session", "-d", "-s", first, "-x", "120", "-y", "40", shellCmd);
    await waitForPane(first, /[$#] ?$/m);
    tmux("send-keys", "-t", first, "echo marker-$((6*7))-ok", "Enter");
    await waitForPane(first, /marker-42-ok/);
    tmux("send-keys", "-t", first, "C-\\");
    await waitForPane(first, /detached from session .*\n.*SHELL-EXIT=0/s);
    // The session kept running: the next shell reattaches and replays what was on screen.
    tmux("new-session", "-d", "-s", second, "-x", "120", "-y", "40", shellCmd);
    await waitForPane(second, /marker-42-ok/);
    tmux("send-keys", "-t", second, "exit", "Enter");
    const done = await waitForPane(second, /SHELL-EXIT=\d+/);
    expect(done).toMatch(/SHELL-EXIT=0/);
  });

  it("stops, starts and destroys", async () => {
    const stopped = await product.http("POST", `/sandboxes/${sb.id}/stop`);
    expect(stopped.status).toBe(200);
    expect(stopped.json<Sandbox>().status).toBe("stopped");
    // inspect shows the thermal state and since when (Connect's thermal_since_ms).
    const inspected = await product.cli(["inspect", "gw1"]);
    expect(inspected.stdout).toMatch(/^thermal\s+cold \(since \d+s ago\)$/m);
    const started = await product.http("POST", `/sandboxes/${sb.id}/start`, { body: {} });
    expect(started.status).toBe(200);
    expect(started.json<Sandbox>().status).toBe("running");
    const ok = await product.http("POST", `/sandboxes/${sb.id}/exec`, { body: { cmd: ["true"] } });
    expect(ok.json(), ok.text).toMatchObject({ exit_code: 0 });
    const destroyed = await product.http("DELETE", `/sandboxes/${sb.id}`);
    expect(destroyed.json()).toEqual({ status: "destroyed" });
    expect((await product.http("GET", `/sandboxes/${sb.id}`)).status).toBe(404);
  });
});
