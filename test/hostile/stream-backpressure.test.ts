import { once } from "node:events";
import { connect } from "node:net";
import type { AgentClient } from "@bhatti/agent-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import { type Product, startProduct } from "../thermal/product-harness.js";
import {
  createSandbox,
  createTenant,
  execJson,
  gatewayPid,
  httpAs,
  openStream,
  rootAgent,
  rssBytes,
  waitFor,
} from "./stream-harness.js";

const MiB = 1024 * 1024;
/** The gateway's agent deadline in this product: short, so a stopped agent is seen quickly. */
const AGENT_DEADLINE_MS = 5_000;
/** Port of the in-sandbox helper that resumes a stopped agent. */
const RESUME_PORT = 19_999;

/**
 * A producer that writes 1 MiB of output per round and counts its rounds in a file: when the
 * count stops moving, its stdout is blocked all the way from the client (backpressure reached
 * the command). `$0` names it, so `ps` can tell whether it still runs.
 */
const producer = (tag: string) => [
  "sh",
  "-c",
  "i=0; while :; do yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 1048576; i=$((i+1)); echo $i > /tmp/progress-$0; done",
  tag,
];

/**
 * Slow and stalled clients, and a hostile agent, through the whole product (`bhatti serve`,
 * gvisor): the gateway's memory stays bounded while clients stop reading `yes`-like output,
 * clients that go away free what they held, and an agent stopped by sandbox root costs its
 * callers a 504 at the deadline, not a hang; the gateway stays the same process throughout and
 * keeps serving another tenant.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)(
  "streams: backpressure, disconnects, stopped agent (product)",
  () => {
    let product: Product;
    let pid: number;
    let sandbox: string;
    let otherKey: string;
    let otherSandbox: string;

    const progress = async (tag: string) => {
      const r = await execJson(product, sandbox, [
        "sh",
        "-c",
        `cat /tmp/progress-${tag} 2>/dev/null || echo 0`,
      ]);
      expect(r.status, r.text).toBe(200);
      return Number(r.stdout.trim());
    };

    /** Waits until the producer's round count has not moved for several reads in a row. */
    const stalled = async (tag: string): Promise<number> => {
      let last = -1;
      let same = 0;
      const v = await waitFor(
        `producer ${tag} blocked`,
        async () => {
          const now = await progress(tag);
          same = now === last ? same + 1 : 0;
          last = now;
          return { now, same };
        },
        (s) => s.now > 0 && s.same >= 6,
        120_000,
        500,
      );
      return v.now;
    };

    const running = async (tag: string) => {
      const r = await execJson(product, sandbox, [
        "sh",
        "-c",
        `ps | grep -c '[s]h -c i=0.* ${tag}$' || true`,
      ]);
      expect(r.status, r.text).toBe(200);
      return Number(r.stdout.trim());
    };

    /** The other tenant is served, by the same gateway process. */
    const othersServed = async () => {
      expect(gatewayPid(product)).toBe(pid);
      const r = await execJson(product, otherSandbox, ["echo", "still here"], otherKey);
      expect(r.status, r.text).toBe(200);
      expect(r.stdout).toBe("still here\n");
    };

    beforeAll(async () => {
      product = await startProduct({
        flags: [`--agent-op-timeout=${AGENT_DEADLINE_MS}ms`, "--thermal-warm-after=1h"],
      });
      pid = gatewayPid(product);
      sandbox = await createSandbox(product, "stream");
      otherKey = await createTenant(product, "stream-other");
      otherSandbox = await createSandbox(product, "other", otherKey);
      // Warm the gateway's code paths so the memory baseline includes them.
      await execJson(product, sandbox, ["true"]);
    }, 240_000);

    afterAll(async () => {
      await product?.dispose();
    }, 180_000);

    it("a WebSocket exec client that stops reading blocks the command, not the gateway's memory; disconnecting frees it", {
      timeout: 240_000,
    }, async () => {
      const before = rssBytes(pid);
      const ws = await product.websocket(`/sandboxes/${sandbox}/exec/ws`);
      try {
        const started = new Promise<void>((resolve, reject) => {
          ws.once("message", (d) => {
            const m = JSON.parse(d.toString()) as { type?: string };
            if (m.type === "session") resolve();
            else reject(new Error(`first message: ${d.toString()}`));
          });
        });
        // max_idle_sec 1: once the client is gone, the agent ends the command.
        ws.send(JSON.stringify({ cmd: producer("stall-ws"), max_idle_sec: 1 }));
        await started;
        // Stop reading: the socket is paused, nothing more is taken from the kernel.
        ws.pause();
        const rounds = await stalled("stall-ws");
        const grown = rssBytes(pid) - before;
        // Blocked after a few buffers' worth, not after hundreds of MiB.
        expect(rounds).toBeLessThan(200);
        expect(grown).toBeLessThan(64 * MiB);
        // Still there, blocked (the shell and its pipeline's processes).
        expect(await running("stall-ws")).toBeGreaterThan(0);
      } finally {
        ws.terminate();
      }
      await waitFor(
        "WS producer gone",
        () => running("stall-ws"),
        (n) => n === 0,
        60_000,
        500,
      );
      await othersServed();
    });

    it("a WebSocket shell client that stops reading blocks the TTY's command, not the gateway's memory", {
      timeout: 240_000,
    }, async () => {
      const before = rssBytes(pid);
      const ws = await product.websocket(`/sandboxes/${sandbox}/ws?new=true`);
      try {
        const started = new Promise<void>((resolve) => {
          ws.once("message", () => resolve());
        });
        await started;
        // Keystrokes: run the producer in the shell, then stop reading its output.
        const [sh, c, script, tag] = producer("stall-sh");
        ws.send(`${sh} ${c} '${script}' ${tag}\n`);
        ws.pause();
        const rounds = await stalled("stall-sh");
        const grown = rssBytes(pid) - before;
        expect(rounds).toBeLessThan(200);
        expect(grown).toBeLessThan(64 * MiB);
      } finally {
        ws.terminate();
      }
      // A TTY session outlives its client by design: end the producer, then others are served.
      const killed = await execJson(product, sandbox, [
        "sh",
        "-c",
        "kill -KILL $(ps | grep '[s]h -c i=0.* stall-sh$' | awk '{print $1}'); true",
      ]);
      expect(killed.status).toBe(200);
      await waitFor(
        "shell producer gone",
        () => running("stall-sh"),
        (n) => n === 0,
        60_000,
        500,
      );
      await othersServed();
    });

    it("an NDJSON exec client that stops reading blocks the command, not the gateway's memory; disconnecting kills it", {
      timeout: 240_000,
    }, async () => {
      const before = rssBytes(pid);
      const stream = await openStream(product, "POST", `/sandboxes/${sandbox}/exec`, {
        body: { cmd: producer("stall-nd") },
        headers: { accept: "application/x-ndjson" },
      });
      try {
        expect(stream.res.statusCode).toBe(200);
        const rounds = await stalled("stall-nd");
        const grown = rssBytes(pid) - before;
        expect(rounds).toBeLessThan(200);
        expect(grown).toBeLessThan(64 * MiB);
        // Still there, blocked (the shell and its pipeline's processes).
        expect(await running("stall-nd")).toBeGreaterThan(0);
      } finally {
        stream.close();
      }
      await waitFor(
        "NDJSON producer gone",
        () => running("stall-nd"),
        (n) => n === 0,
        60_000,
        500,
      );
      await othersServed();
    });

    it("60 clients in a row that disconnect mid-download free their agent connections (the agent allows 50)", {
      timeout: 180_000,
    }, async () => {
      const size = 32 * MiB;
      const made = await execJson(product, sandbox, [
        "sh",
        "-c",
        `yes | head -c ${size} > /tmp/big && echo ok`,
      ]);
      expect(made.stdout).toBe("ok\n");
      for (let i = 0; i < 60; i++) {
        const stream = await openStream(product, "GET", `/sandboxes/${sandbox}/files?path=/tmp/big`);
        expect(stream.res.statusCode).toBe(200);
        expect(stream.res.headers["x-file-size"]).toBe(String(size));
        // Take the first bytes, then vanish mid-body.
        stream.res.resume();
        await once(stream.res, "data");
        stream.close();
      }
      // The sandbox still answers everything that needs an agent connection.
      const small = await httpAs(product, "GET", `/sandboxes/${sandbox}/files?path=/tmp/progress-stall-nd`);
      expect(small.status, small.text).toBe(200);
      const ls = await httpAs(product, "GET", `/sandboxes/${sandbox}/files?path=/tmp&ls=true`);
      expect(ls.status, ls.text).toBe(200);
      expect((JSON.parse(ls.text) as { name: string }[]).some((e) => e.name === "big")).toBe(true);
      const r = await execJson(product, sandbox, ["echo", "after 60"]);
      expect(r.stdout).toBe("after 60\n");
      await othersServed();
    });

    describe("an agent stopped by sandbox root", () => {
      let root: AgentClient;
      let host: string;
      let agentPid: string;

      beforeAll(async () => {
        ({ client: root, host } = await rootAgent(product, sandbox));
        // The agent is node running agent.mjs under tini; sandbox root sees it like any process.
        const found = await root.exec(
          ["sh", "-c", "ps -o pid,args | grep '[a]gent.mjs' | grep -v tini | awk '{print $1}'"],
          { root: true },
        );
        agentPid = found.stdout.toString().trim();
        expect(agentPid).toMatch(/^\d+$/);
      });

      afterAll(() => {
        root?.close();
      });

      it("answers 504 within the deadline for files, stat and sessions, keeps serving others, and recovers on SIGCONT", {
        timeout: 240_000,
      }, async () => {
        // Nothing that needs the agent can run while it is stopped, so a root helper started
        // first holds the CONT: it listens on a port, and a connection to it (straight to the
        // sandbox's address, no agent involved) resumes the agent.
        const helper = await root.execDetached(
          [
            "sh",
            "-c",
            `echo go | nc -l -p ${RESUME_PORT} >/dev/null 2>&1 & n=$!; sleep 0.2; kill -STOP ${agentPid}; wait $n; kill -CONT ${agentPid}`,
          ],
          { root: true },
        );
        expect(helper.pid).toBeGreaterThan(0);
        // The STOP has landed once a request times out.
        await waitFor(
          "agent stopped",
          async () => (await httpAs(product, "GET", `/sandboxes/${sandbox}/sessions`)).status,
          (s) => s === 504,
          60_000,
          100,
        );
        const cases: Array<[string, string]> = [
          ["GET", `/sandboxes/${sandbox}/files?path=/etc/hostname`],
          ["GET", `/sandboxes/${sandbox}/files?path=/etc&ls=true`],
          ["HEAD", `/sandboxes/${sandbox}/files?path=/etc/hostname`],
          ["GET", `/sandboxes/${sandbox}/sessions`],
        ];
        // The CLI goes through Connect (ListFiles): DeadlineExceeded there.
        const viaConnect = product.cli(["file", "ls", "stream", "/etc"]);
        const replies = await Promise.all([
          ...cases.map(([m, p]) => httpAs(product, m, p)),
          httpAs(product, "PUT", `/sandboxes/${sandbox}/files?path=/tmp/put-while-stopped`, { body: "x" }),
        ]);
        for (const [i, r] of replies.entries())
          expect(r.status, `${cases[i]?.join(" ") ?? "PUT"}: ${r.text}`).toBe(504);
        expect(replies[0]?.text).toContain("did not answer in time");
        const cli = await viaConnect;
        expect(cli.code, cli.stdout).not.toBe(0);
        expect(cli.stderr).toContain("sandbox agent did not answer in time");
        await othersServed();

        // A WebSocket exec whose command cannot start: stdin sent meanwhile is capped (close
        // 1009 past 1 MiB), and below the cap the client gets the deadline's error.
        const flood = await product.websocket(`/sandboxes/${sandbox}/exec/ws`);
        const floodClosed = once(flood, "close") as Promise<[number, Buffer]>;
        const floodMessages: string[] = [];
        flood.on("message", (d) => floodMessages.push(d.toString()));
        flood.send(JSON.stringify({ cmd: ["cat"] }));
        for (let i = 0; i < 3; i++) flood.send(Buffer.alloc(512 * 1024, 0x61));
        const [floodCode] = await floodClosed;
        expect(floodCode).toBe(1009);
        expect(floodMessages.join("\n")).toContain("stdin sent before the command started");

        const waiting = await product.websocket(`/sandboxes/${sandbox}/exec/ws`);
        const waitingClosed = once(waiting, "close") as Promise<[number, Buffer]>;
        const waitingMessages: string[] = [];
        waiting.on("message", (d) => waitingMessages.push(d.toString()));
        waiting.send(JSON.stringify({ cmd: ["cat"] }));
        waiting.send("a little stdin");
        const [waitingCode] = await waitingClosed;
        expect(waitingCode).toBe(1011);
        expect(waitingMessages.join("\n")).toContain("did not answer in time");
        await othersServed();

        // Resume through the helper, then everything answers again.
        const resume = await product.env.options.dialer.endpoint(host, RESUME_PORT);
        await waitFor(
          "helper reached",
          () =>
            new Promise<boolean>((resolve) => {
              // Only the helper's "go" proves it was reached (the relay accepts before it dials).
              const s = connect(resume as { path: string });
              let heard = false;
              s.on("data", () => {
                heard = true;
                s.end();
              });
              s.once("error", () => undefined);
              s.once("close", () => resolve(heard));
            }),
          (ok) => ok,
          30_000,
          200,
        );
        const back = await waitFor(
          "agent answers again",
          async () => (await httpAs(product, "GET", `/sandboxes/${sandbox}/files?path=/etc/hostname`)).status,
          (s) => s === 200,
          60_000,
          200,
        );
        expect(back).toBe(200);
        const r = await execJson(product, sandbox, ["echo", "resumed"]);
        expect(r.stdout).toBe("resumed\n");
        expect(gatewayPid(product)).toBe(pid);
      });
    });
  },
);
