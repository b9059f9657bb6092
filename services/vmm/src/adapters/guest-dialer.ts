import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Opens TCP connections to sandbox addresses. In the product the sandboxes' bridges live in
 * the vmm's network namespace, so this is a plain `net.connect`. When the bridges live in
 * another namespace (tests use a stand-in host netns), connections go through a tiny relay
 * process started in that namespace with `nsenter --net` (Node cannot setns itself).
 */
export interface GuestDialer {
  connect(host: string, port: number, timeoutMs?: number): Promise<Socket>;
  close(): Promise<void>;
}

function connectTcp(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error(`connect ${host}:${port} timed out`), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.removeAllListeners("error");
      resolve(sock);
    });
    sock.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export function createDirectDialer(): GuestDialer {
  return {
    connect: (host, port, timeoutMs = 2000) => connectTcp(host, port, timeoutMs),
    close: async () => {},
  };
}

// The relay: per connection, reads "host port timeoutMs\n", dials inside its netns, answers
// "OK\n" or "ERR <code> <message>\n", then pipes bytes both ways (half-close preserved).
const RELAY_SCRIPT = `
const net = require("node:net");
const server = net.createServer({ allowHalfOpen: true }, (c) => {
  let head = Buffer.alloc(0);
  const onData = (d) => {
    head = Buffer.concat([head, d]);
    const nl = head.indexOf(10);
    if (nl < 0) return;
    c.off("data", onData);
    c.pause();
    const [host, port, ms] = head.subarray(0, nl).toString().split(" ");
    const rest = head.subarray(nl + 1);
    const t = net.connect({ host, port: Number(port), allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => t.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), Number(ms));
    let connected = false;
    t.once("connect", () => {
      clearTimeout(timer);
      connected = true;
      c.write("OK\\n");
      if (rest.length) t.write(rest);
      c.pipe(t); t.pipe(c); c.resume();
    });
    t.on("error", (e) => {
      clearTimeout(timer);
      if (connected) c.destroy();
      else c.end("ERR " + (e.code || "EIO") + " " + e.message + "\\n");
    });
    c.on("error", () => t.destroy());
    c.on("close", () => t.destroy());
  };
  c.on("data", onData);
});
server.listen(process.argv[1], () => process.stdout.write("ready\\n"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`;

/** A dialer whose connections originate in the network namespace at `netnsPath`. */
export async function createNetnsDialer(netnsPath: string): Promise<GuestDialer> {
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-dialer-"));
  const socketPath = join(dir, "relay.sock");
  const child: ChildProcess = spawn(
    "nsenter",
    [`--net=${netnsPath}`, "--", process.execPath, "-e", RELAY_SCRIPT, socketPath],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`netns relay exited ${code}`)));
    child.stdout?.once("data", () => resolve());
  });
  child.removeAllListeners("exit");
  return {
    connect(host, port, timeoutMs = 2000) {
      return new Promise((resolve, reject) => {
        const sock = connect(socketPath);
        let head = Buffer.alloc(0);
        const fail = (e: Error) => {
          sock.destroy();
          reject(e);
        };
        sock.once("error", fail);
        sock.once("connect", () => sock.write(`${host} ${port} ${timeoutMs}\n`));
        const onData = (d: Buffer) => {
          head = Buffer.concat([head, d]);
          const nl = head.indexOf(10);
          if (nl < 0) return;
          sock.off("data", onData);
          sock.pause();
          const line = head.subarray(0, nl).toString();
          const rest = head.subarray(nl + 1);
          if (!line.startsWith("OK")) {
            const [, code, ...msg] = line.split(" ");
            return fail(Object.assign(new Error(msg.join(" ")), { code }));
          }
          sock.off("error", fail);
          if (rest.length > 0) sock.unshift(rest);
          resolve(sock);
        };
        sock.on("data", onData);
        sock.once("end", () => fail(Object.assign(new Error("relay closed"), { code: "ECONNRESET" })));
      });
    },
    async close() {
      child.stdin?.end();
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        setTimeout(() => child.kill("SIGKILL"), 1000).unref();
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
