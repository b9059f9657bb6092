import { type Socket, createSocket } from "node:dgram";
import fc from "fast-check";
import { createLogger } from "@bhatti/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressPolicy } from "../domain/egress-policy.js";
import { createUpstreamClient } from "./dns-forwarder.js";
import { DnsType, Rcode, buildQuery, buildResponse, parseMessage } from "./dns-message.js";
import { type ResolverDirectory, chainAddresses, createUserResolver } from "./user-resolver.js";

const logger = createLogger({ service: "network-test", level: "error" });

// A real upstream on loopback answering every A query with a public and a private address;
// "chain.example.com" is a CNAME chain with a stray A record of another owner, and
// "other.example.com" is answered with the question of another name.
let upstream: Socket;
let upstreamPort = 0;
const idsSeen: number[] = [];
beforeAll(async () => {
  upstream = createSocket("udp4");
  upstream.on("message", (msg, rinfo) => {
    const q = parseMessage(msg);
    idsSeen.push(q.id);
    const name = q.questions[0]?.name ?? "";
    let reply: Buffer;
    if (name === "chain.example.com") {
      reply = buildResponse(q, {
        rcode: Rcode.NOERROR,
        answers: [
          { type: DnsType.CNAME, ttl: 30, value: "edge.cdn.example.net" },
          { name: "edge.cdn.example.net", type: DnsType.A, ttl: 20, value: "198.51.100.7" },
          { name: "stray.example.org", type: DnsType.A, ttl: 30, value: "203.0.113.66" },
        ],
      });
    } else if (name === "other.example.com") {
      reply = buildResponse(parseMessage(buildQuery(q.id, "victim.example.com", DnsType.A)), {
        rcode: Rcode.NOERROR,
        answers: [{ type: DnsType.A, ttl: 30, value: "203.0.113.99" }],
      });
    } else {
      reply = buildResponse(q, {
        rcode: Rcode.NOERROR,
        answers: [
          { type: DnsType.A, ttl: 30, value: "198.51.100.9" },
          { type: DnsType.A, ttl: 30, value: "10.1.2.3" },
        ],
      });
    }
    upstream.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((ok) => upstream.bind(0, "127.0.0.1", ok));
  upstreamPort = upstream.address().port;
});
afterAll(() => upstream.close());
const clients: { close(): void }[] = [];
afterAll(() => {
  for (const c of clients) c.close();
});

function setup(policies: Record<string, EgressPolicy>, upstreamPortOverride?: number) {
  const allowed: { source: string; ips: string[]; ttl: number }[] = [];
  const siblings: Record<string, string> = { web: "10.0.0.2", api: "10.0.0.3" };
  const directory: ResolverDirectory = {
    addressesOf: (name) => (siblings[name] === undefined ? [] : [siblings[name] as string]),
    nameOf: (address) => Object.entries(siblings).find(([, a]) => a === address)?.[0],
    policyOf: (address) => policies[address],
    allowResolved: async (source, ips, ttl) => {
      allowed.push({ source, ips, ttl });
    },
  };
  const client = createUpstreamClient({
    upstreams: () => [{ host: "127.0.0.1", port: upstreamPortOverride ?? upstreamPort }],
    timeoutMs: 300,
  });
  clients.push(client);
  const resolver = createUserResolver({ address: "127.0.0.1", upstream: client, directory, logger });
  const ask = async (source: string, name: string, type: number = DnsType.A) => {
    const reply = await resolver.answer(buildQuery(7, name, type), source, "udp");
    if (reply === undefined) throw new Error("no reply");
    const m = parseMessage(reply);
    return { id: m.id, rcode: m.flags & 0xf, answers: m.answers };
  };
  return { resolver, ask, allowed };
}

describe("user resolver", () => {
  it("answers siblings authoritatively with TTL 5, AAAA as no data", async () => {
    const { ask } = setup({ "10.0.0.3": { mode: "allow-all" } });
    expect(await ask("10.0.0.3", "WEB.sb")).toEqual({
      id: 7,
      rcode: 0,
      answers: [{ name: "web.sb", type: 1, class: 1, ttl: 5, address: "10.0.0.2" }],
    });
    expect(await ask("10.0.0.3", "web", DnsType.AAAA)).toEqual({ id: 7, rcode: 0, answers: [] });
    expect((await ask("10.0.0.3", "2.0.0.10.in-addr.arpa", DnsType.PTR)).answers[0]?.target).toBe("web.sb");
    expect((await ask("10.0.0.3", "nope.sb")).rcode).toBe(Rcode.NXDOMAIN);
  });

  it("forwards for allow-all, refuses for deny-all", async () => {
    const { ask, allowed } = setup({ "10.0.0.2": { mode: "allow-all" }, "10.0.0.3": { mode: "deny-all" } });
    expect((await ask("10.0.0.2", "example.com")).answers.map((a) => a.address)).toEqual([
      "198.51.100.9",
      "10.1.2.3",
    ]);
    expect((await ask("10.0.0.3", "example.com")).rcode).toBe(Rcode.REFUSED);
    expect((await ask("10.0.0.3", "api")).answers[0]?.address).toBe("10.0.0.3");
    expect(allowed).toEqual([]);
  });

  it("opens only public answers of allowed names before replying", async () => {
    const { ask, allowed } = setup({
      "10.0.0.2": { mode: "allow-list", cidrs: [], hosts: ["*.example.com"] },
    });
    const a = await ask("10.0.0.2", "cdn.example.com");
    expect(a.rcode).toBe(0);
    expect(allowed).toEqual([{ source: "10.0.0.2", ips: ["198.51.100.9"], ttl: 30 }]);
    expect((await ask("10.0.0.2", "example.net")).rcode).toBe(Rcode.REFUSED);
    expect(allowed).toHaveLength(1);
  });

  it("refuses a source that is not one of the user's sandboxes (fail closed)", async () => {
    const { ask, allowed } = setup({ "10.0.0.2": { mode: "allow-all" } });
    expect((await ask("10.0.0.9", "web.sb")).rcode).toBe(Rcode.REFUSED);
    expect((await ask("127.0.0.1", "example.com")).rcode).toBe(Rcode.REFUSED);
    expect((await ask("10.0.0.2", "web.sb")).rcode).toBe(Rcode.NOERROR);
    expect(allowed).toEqual([]);
  });

  it("asks upstream with its own random id and gives the sandbox's id back", async () => {
    const { ask } = setup({ "10.0.0.2": { mode: "allow-all" } });
    const before = idsSeen.length;
    for (let i = 0; i < 6; i++) expect((await ask("10.0.0.2", `n${i}.example.com`)).id).toBe(7);
    const sent = idsSeen.slice(before);
    expect(sent).toHaveLength(6);
    expect(new Set(sent).size).toBeGreaterThan(1); // six random 16-bit ids, not the client's 7 each time
  });

  it("opens only the A records on the question's CNAME chain", async () => {
    const { ask, allowed } = setup({
      "10.0.0.2": { mode: "allow-list", cidrs: [], hosts: ["*.example.com"] },
    });
    expect((await ask("10.0.0.2", "chain.example.com")).rcode).toBe(0);
    expect(allowed).toEqual([{ source: "10.0.0.2", ips: ["198.51.100.7"], ttl: 20 }]);
  });

  it("ignores an upstream reply to another question (SERVFAIL, nothing opened)", async () => {
    const { ask, allowed } = setup({
      "10.0.0.2": { mode: "allow-list", cidrs: [], hosts: ["*.example.com"] },
    });
    expect((await ask("10.0.0.2", "other.example.com")).rcode).toBe(Rcode.SERVFAIL);
    expect(allowed).toEqual([]);
  });

  it("answers names whose labels hold dots without re-encoding them", async () => {
    const { resolver } = setup({
      "10.0.0.2": { mode: "allow-list", cidrs: [], hosts: ["*.example.com"] },
    });
    // Labels ["x.example", "com"] read as "x.example.com", which the allow-list must not match.
    const question = Buffer.from([9, ...Buffer.from("x.example"), 3, ...Buffer.from("com"), 0, 0, 1, 0, 1]);
    const header = Buffer.from([0, 42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    const reply = await resolver.answer(Buffer.concat([header, question]), "10.0.0.2", "tcp");
    expect(reply).toBeDefined();
    expect((reply?.readUInt16BE(2) ?? 0) & 0xf).toBe(Rcode.REFUSED);
    expect(reply?.subarray(12)).toEqual(question);
    // Labels ["a.", "sb"]: once "a..sb", which could not be re-encoded and killed the process.
    const dotted = Buffer.from([2, ...Buffer.from("a."), 2, ...Buffer.from("sb"), 0, 0, 1, 0, 1]);
    const r2 = await resolver.answer(Buffer.concat([header, dotted]), "10.0.0.2", "tcp");
    expect(r2?.subarray(12)).toEqual(dotted);
  });

  it("answers any bytes without rejecting: a reply carries the query's id, or there is none", async () => {
    const { resolver } = setup({
      "10.0.0.2": { mode: "allow-all" },
      "10.0.0.3": { mode: "allow-list", cidrs: [], hosts: ["*.example.com"] },
      "10.0.0.4": { mode: "deny-all" },
    });
    const label = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 63 }),
      fc
        .constantFrom("a.", "web", "sb", "example", "com", "in-addr", "arpa", "2", "0", "10")
        .map((t) => Uint8Array.from(Buffer.from(t, "latin1"))),
    );
    const query = fc
      .tuple(
        fc.integer({ min: 0, max: 0xffff }),
        fc.oneof(fc.constant(0x0100), fc.integer({ min: 0, max: 0xffff })),
        fc.constantFrom(0, 1, 1, 2),
        fc.array(label, { maxLength: 5 }),
        fc.constantFrom(1, 12, 28, 255, 5),
        fc.uint8Array({ maxLength: 16 }),
      )
      .map(([id, flags, qd, labels, type, tail]) => {
        const header = Buffer.alloc(12);
        header.writeUInt16BE(id, 0);
        header.writeUInt16BE(flags, 2);
        header.writeUInt16BE(qd, 4);
        const name = Buffer.concat([
          ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), l])),
          Buffer.from([0]),
        ]);
        return Buffer.concat([header, name, Buffer.from([0, type, 0, 1]), tail]);
      });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          query,
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        ),
        fc.constantFrom("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.99"),
        fc.constantFrom("udp" as const, "tcp" as const),
        async (bytes, source, transport) => {
          const reply = await resolver.answer(bytes, source, transport);
          if (reply !== undefined) expect(reply.readUInt16BE(0)).toBe(bytes.readUInt16BE(0));
        },
      ),
      { numRuns: 400, seed: 20261203 },
    );
  });

  it("caps the queries one user forwards per second, whatever the number of its sandboxes", async () => {
    const policies: Record<string, EgressPolicy> = {};
    for (let i = 10; i < 20; i++) policies[`10.0.0.${i}`] = { mode: "allow-all" };
    const client = createUpstreamClient({
      upstreams: () => [{ host: "127.0.0.1", port: upstreamPort }],
      timeoutMs: 300,
    });
    clients.push(client);
    const resolver = createUserResolver({
      address: "127.0.0.1",
      upstream: client,
      userForwards: { perSecond: 0.001, burst: 10 }, // no refill within the test
      directory: {
        addressesOf: () => [],
        nameOf: () => undefined,
        policyOf: (a) => policies[a],
        allowResolved: async () => undefined,
      },
      logger,
    });
    const rcodes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const reply = await resolver.answer(
        buildQuery(i, `q${i}.example.com`, DnsType.A),
        `10.0.0.${10 + (i % 10)}`,
        "udp",
      );
      rcodes.push((reply?.readUInt16BE(2) ?? 0xf) & 0xf);
    }
    // The user's burst passes, spread over ten sandboxes; then every one of them is refused.
    expect(rcodes).toEqual([...new Array(10).fill(Rcode.NOERROR), ...new Array(10).fill(Rcode.REFUSED)]);
  });

  it("answers SERVFAIL when the upstream is silent", async () => {
    const silent = createSocket("udp4");
    await new Promise<void>((ok) => silent.bind(0, "127.0.0.1", ok));
    try {
      const { ask } = setup({ "10.0.0.2": { mode: "allow-all" } }, silent.address().port);
      expect((await ask("10.0.0.2", "example.com")).rcode).toBe(Rcode.SERVFAIL);
    } finally {
      silent.close();
    }
  });

  it("serves real UDP and TCP clients on its address", async () => {
    const { resolver } = setup({ "127.0.0.1": { mode: "allow-all" } });
    // Port 0 cannot be shared by the UDP and TCP listeners; pick a free-looking high port.
    let started = false;
    let port = 0;
    for (let attempt = 0; attempt < 5 && !started; attempt++) {
      port = 20_000 + Math.floor(Math.random() * 40_000);
      const r = createUserResolver({
        address: "127.0.0.1",
        port,
        upstream: createUpstreamClient({ upstreams: () => [], timeoutMs: 300 }),
        directory: {
          addressesOf: (n) => (n === "web" ? ["10.0.0.2"] : []),
          nameOf: () => undefined,
          policyOf: () => ({ mode: "allow-all" }),
          allowResolved: async () => undefined,
        },
        logger,
      });
      try {
        await r.start();
        started = true;
        const client = createSocket("udp4");
        const reply = await new Promise<Buffer>((ok) => {
          client.once("message", ok);
          client.send(buildQuery(9, "web.sb", DnsType.A), port, "127.0.0.1");
        });
        client.close();
        expect(parseMessage(reply).answers[0]?.address).toBe("10.0.0.2");
        const { connect } = await import("node:net");
        const tcpReply = await new Promise<Buffer>((ok, fail) => {
          const sock = connect(port, "127.0.0.1", () => {
            const q = buildQuery(10, "web", DnsType.A);
            const len = Buffer.alloc(2);
            len.writeUInt16BE(q.length);
            sock.write(Buffer.concat([len, q]));
          });
          let data = Buffer.alloc(0);
          sock.on("data", (c: Buffer) => {
            data = Buffer.concat([data, c]);
            if (data.length >= 2 + data.readUInt16BE(0)) {
              sock.destroy();
              ok(data.subarray(2));
            }
          });
          sock.on("error", fail);
        });
        expect(parseMessage(tcpReply)).toMatchObject({ id: 10, answers: [{ address: "10.0.0.2" }] });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw e;
      } finally {
        await r.close();
      }
    }
    expect(started).toBe(true);
    await resolver.close();
  });
});

describe("chainAddresses", () => {
  it("follows CNAMEs from the question and ignores other owners", () => {
    const rec = (name: string, type: number, v: string) =>
      type === DnsType.A
        ? { name, type, class: 1, ttl: 9, address: v }
        : { name, type, class: 1, ttl: 9, target: v };
    const answers = [
      rec("q.example", DnsType.CNAME, "a.example"),
      rec("a.example", DnsType.CNAME, "b.example"),
      rec("b.example", DnsType.A, "198.51.100.1"),
      rec("q.example", DnsType.A, "198.51.100.2"),
      rec("x.example", DnsType.A, "198.51.100.3"),
      rec("x.example", DnsType.CNAME, "q.example"),
    ];
    expect(chainAddresses("q.example", answers).map((a) => a.address)).toEqual([
      "198.51.100.1",
      "198.51.100.2",
    ]);
  });
});
