import { type Socket as UdpSocket, createSocket } from "node:dgram";
import { type Server, type Socket, createServer } from "node:net";
import type { Logger } from "@bhatti/runtime";
import { type EgressPolicy, policyAllowsHost } from "../domain/egress-policy.js";
import { isNonPublic, parseIpv4 } from "../domain/ipv4.js";
import {
  type AnswerRecord,
  type DnsMessage,
  type DnsQuestion,
  type DnsRecord,
  DnsType,
  Rcode,
  buildResponse,
  headerOnlyResponse,
  isResponse,
  opcodeOf,
  parseMessage,
} from "./dns-message.js";
import { type UpstreamClient, UpstreamBusyError } from "./dns-forwarder.js";
import { DEFAULT_SOURCE_LIMITS, type SourceLimits, createSourceLimiter } from "./source-limiter.js";

/** TTL of the resolver's own answers (sibling names), short so renames and moves show fast. */
export const SIBLING_TTL = 5;
export const SIBLING_SUFFIX = "sb";

/** What a user's resolver needs to know about that user's sandboxes. */
export interface ResolverDirectory {
  /** Addresses of the user's sandboxes called `name` (canonical: lowercase). */
  addressesOf(name: string): string[];
  /** The name of the user's sandbox with this address. */
  nameOf(address: string): string | undefined;
  /** The egress policy of the sandbox at `address`; undefined if it is not one of them. */
  policyOf(address: string): EgressPolicy | undefined;
  /** Called before an allow-listed answer is returned, with its public A addresses. */
  allowResolved(address: string, ips: string[], ttl: number): Promise<void>;
}

export interface UserResolverOptions {
  /** Address to bind (the bridge gateway). */
  address: string;
  port?: number;
  /** Shared by every user's resolver (ids, sockets and the in-flight bound are global). */
  upstream: UpstreamClient;
  directory: ResolverDirectory;
  logger: Logger;
  limits?: SourceLimits;
  /**
   * Queries the whole user may forward: its sandboxes together cannot take more than this
   * share of the upstreams (and of the host's upstream quota).
   */
  userForwards?: { perSecond: number; burst: number };
  /** TCP connections of the resolver (all sources together). */
  maxTcpConnections?: number;
  /** Queries read from one TCP connection and not yet answered; reading pauses beyond. */
  maxPipelined?: number;
}

export interface UserResolver {
  start(): Promise<void>;
  close(): Promise<void>;
  /**
   * Answers one query as if it came from `source` (also used by the UDP and TCP servers).
   * Never rejects: an internal failure is answered SERVFAIL.
   */
  answer(query: Buffer, source: string, transport: "udp" | "tcp"): Promise<Buffer | undefined>;
}

const DEFAULT_MAX_TCP_CONNECTIONS = 256;
const DEFAULT_USER_FORWARDS = { perSecond: 300, burst: 600 };
const DEFAULT_MAX_PIPELINED = 16;
/** Unsent reply bytes of one TCP connection beyond which reading pauses (a client not reading). */
const TCP_WRITE_HIGH_WATER = 64 * 1024;
const TCP_IDLE_MS = 10_000;
/** CNAME links followed from the question's name when opening the firewall. */
const MAX_CNAME_CHAIN = 16;

/**
 * The public A addresses that answer the question: A records whose owner is the question's
 * name or a name reached from it through the answer's CNAME records. A records of other
 * owners (which an upstream or a spoofer could add) open nothing.
 */
export function chainAddresses(question: string, answers: readonly DnsRecord[]): DnsRecord[] {
  const chain = new Set([question]);
  for (let i = 0; i < MAX_CNAME_CHAIN; i++) {
    const before = chain.size;
    for (const a of answers) {
      if (a.type === DnsType.CNAME && a.target !== undefined && chain.has(a.name)) chain.add(a.target);
    }
    if (chain.size === before) break;
  }
  return answers.filter((a) => a.type === DnsType.A && a.address !== undefined && chain.has(a.name));
}

/** Lowercase, no trailing dot, no `.sb` suffix. */
export function canonicalSiblingName(name: string): { name: string; explicit: boolean } {
  const n = name.toLowerCase().replace(/\.$/, "");
  return n.endsWith(`.${SIBLING_SUFFIX}`)
    ? { name: n.slice(0, -SIBLING_SUFFIX.length - 1), explicit: true }
    : { name: n, explicit: false };
}

function reverseAddress(name: string): string | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa$/.exec(name);
  return m === null ? undefined : `${m[4]}.${m[3]}.${m[2]}.${m[1]}`;
}

/**
 * The DNS resolver of one user, on that user's bridge gateway :53 (UDP and TCP). It answers
 * sibling names itself and forwards the rest, applying the asking sandbox's egress policy:
 * deny-all sandboxes get sibling names only; allow-list sandboxes get only allowed names,
 * whose public addresses are added to the firewall before the answer is sent.
 */
export function createUserResolver(options: UserResolverOptions): UserResolver {
  const { directory, logger } = options;
  const limiter = createSourceLimiter(options.limits ?? DEFAULT_SOURCE_LIMITS);
  const forwards = options.userForwards ?? DEFAULT_USER_FORWARDS;
  const userForwards = createSourceLimiter(
    { queriesPerSecond: forwards.perSecond, burst: forwards.burst, maxInFlight: 0, maxTcpConnections: 0 },
    1,
  );
  const maxTcpConnections = options.maxTcpConnections ?? DEFAULT_MAX_TCP_CONNECTIONS;
  const maxPipelined = options.maxPipelined ?? DEFAULT_MAX_PIPELINED;
  let udp: UdpSocket | undefined;
  let tcp: Server | undefined;
  const connections = new Set<Socket>();

  async function forward(
    query: Buffer,
    message: DnsMessage,
    question: DnsQuestion,
    source: string,
    policy: EgressPolicy,
    transport: "udp" | "tcp",
  ): Promise<Buffer> {
    let reply: Buffer;
    try {
      reply = await options.upstream.forward(query, message, transport);
    } catch (e) {
      if (e instanceof UpstreamBusyError) logger.warn("dns forwarding is saturated", { error: e.message });
      else logger.debug("dns forward failed", { name: question.name, error: (e as Error).message });
      return buildResponse(message, { rcode: Rcode.SERVFAIL });
    }
    if (policy.mode !== "allow-list") return reply;
    // Open the firewall for the answer's public addresses before the sandbox sees them.
    let parsed: DnsMessage;
    try {
      parsed = parseMessage(reply);
    } catch {
      return buildResponse(message, { rcode: Rcode.SERVFAIL });
    }
    const records = chainAddresses(question.name, parsed.answers);
    const ips = records
      .map((a) => a.address as string)
      .filter((ip) => {
        const n = parseIpv4(ip);
        return n !== undefined && !isNonPublic(n); // a private answer would be DNS rebinding
      });
    if (ips.length > 0) {
      const ttl = Math.min(...records.map((r) => r.ttl));
      try {
        await directory.allowResolved(source, [...new Set(ips)], ttl);
      } catch (e) {
        logger.warn("could not allow resolved addresses", { source, ips, error: e });
        return buildResponse(message, { rcode: Rcode.SERVFAIL });
      }
    }
    return reply;
  }

  async function answerQuery(
    query: Buffer,
    source: string,
    transport: "udp" | "tcp",
  ): Promise<Buffer | undefined> {
    let message: DnsMessage;
    try {
      message = parseMessage(query);
    } catch {
      return headerOnlyResponse(query, Rcode.FORMERR);
    }
    if (isResponse(message)) return undefined;
    const question = message.questions[0];
    if (opcodeOf(message) !== 0 || message.questions.length !== 1 || question === undefined) {
      return buildResponse(message, { rcode: Rcode.NOTIMP });
    }
    // Fail closed: only the user's own sandboxes are served.
    const policy = directory.policyOf(source);
    if (policy === undefined) return buildResponse(message, { rcode: Rcode.REFUSED });

    if (question.plain) {
      const reverse = reverseAddress(question.name);
      const siblingOfReverse = reverse === undefined ? undefined : directory.nameOf(reverse);
      if (siblingOfReverse !== undefined) {
        const answers: AnswerRecord[] =
          question.type === DnsType.PTR || question.type === DnsType.ANY
            ? [{ type: DnsType.PTR, ttl: SIBLING_TTL, value: `${siblingOfReverse}.${SIBLING_SUFFIX}` }]
            : [];
        return buildResponse(message, { rcode: Rcode.NOERROR, authoritative: true, answers });
      }

      const sibling = canonicalSiblingName(question.name);
      const addresses = directory.addressesOf(sibling.name);
      if (addresses.length > 0) {
        const answers: AnswerRecord[] =
          question.type === DnsType.A || question.type === DnsType.ANY
            ? addresses.map((a) => ({ type: DnsType.A, ttl: SIBLING_TTL, value: a }))
            : []; // NODATA for AAAA and others: the name exists, with IPv4 only
        return buildResponse(message, { rcode: Rcode.NOERROR, authoritative: true, answers });
      }
      if (sibling.explicit) return buildResponse(message, { rcode: Rcode.NXDOMAIN, authoritative: true });
    } else if (policy.mode !== "allow-all") {
      // A label with a dot or an odd byte cannot be matched against the allowed names.
      return buildResponse(message, { rcode: Rcode.REFUSED });
    }

    if (!policyAllowsHost(policy, question.name)) return buildResponse(message, { rcode: Rcode.REFUSED });
    if (!userForwards.take("user") || !limiter.acquire(source)) {
      return buildResponse(message, { rcode: Rcode.REFUSED });
    }
    try {
      return await forward(query, message, question, source, policy, transport);
    } finally {
      limiter.release(source);
    }
  }

  async function answer(
    query: Buffer,
    source: string,
    transport: "udp" | "tcp",
  ): Promise<Buffer | undefined> {
    try {
      return await answerQuery(query, source, transport);
    } catch (e) {
      logger.warn("dns query failed", { source, error: e });
      return headerOnlyResponse(query, Rcode.SERVFAIL);
    }
  }

  function serveTcp(socket: Socket): void {
    const source = socket.remoteAddress ?? "";
    if (connections.size >= maxTcpConnections || !limiter.openConnection(source)) {
      socket.destroy();
      return;
    }
    connections.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on("close", () => {
      connections.delete(socket);
      limiter.closeConnection(source);
    });
    socket.on("error", () => socket.destroy());
    let pending: Buffer = Buffer.alloc(0);
    let queued = 0;
    let chain = Promise.resolve();
    const resumeIfRoom = () => {
      if (!socket.destroyed && queued < maxPipelined && socket.writableLength < TCP_WRITE_HIGH_WATER)
        socket.resume();
    };
    socket.on("drain", resumeIfRoom);
    const respond = async (query: Buffer) => {
      try {
        if (socket.destroyed) return; // queued behind a connection that is gone: no work for it
        // Over the rate: REFUSED (dropping would stall every later reply on this connection).
        const reply = limiter.take(source)
          ? await answer(query, source, "tcp")
          : headerOnlyResponse(query, Rcode.REFUSED);
        if (reply === undefined || socket.destroyed) return;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(reply.length);
        if (!socket.write(Buffer.concat([len, reply]))) socket.pause();
      } catch (e) {
        logger.warn("dns tcp reply failed", { source, error: e });
        socket.destroy();
      } finally {
        queued--;
        resumeIfRoom();
      }
    };
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        // A copy, so a queued query does not keep the whole received buffer alive.
        const query = Buffer.from(pending.subarray(2, 2 + pending.readUInt16BE(0)));
        pending = pending.subarray(2 + query.length);
        queued++;
        // Replies go out in query order; each step handles its own errors.
        chain = chain.then(() => respond(query));
      }
      if (pending.length === 0) pending = Buffer.alloc(0);
      if (queued >= maxPipelined) socket.pause();
    });
  }

  return {
    answer,
    async start() {
      const port = options.port ?? 53;
      const udpSocket = createSocket("udp4");
      await new Promise<void>((resolve, reject) => {
        udpSocket.once("error", reject);
        udpSocket.bind({ address: options.address, port, exclusive: true }, () => {
          udpSocket.off("error", reject);
          resolve();
        });
      });
      udpSocket.on("error", (e) => logger.warn("dns udp socket error", { error: e }));
      udpSocket.on("message", (msg, rinfo) => {
        // Over the rate: dropped, so a flood costs one map lookup per packet.
        if (!limiter.take(rinfo.address)) return;
        void answer(msg, rinfo.address, "udp").then((reply) => {
          if (reply !== undefined && udp === udpSocket) udpSocket.send(reply, rinfo.port, rinfo.address);
        });
      });
      udp = udpSocket;
      const server = createServer(serveTcp);
      server.on("error", (e) => logger.warn("dns tcp server error", { error: e }));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host: options.address, port, exclusive: true }, () => {
            server.off("error", reject);
            resolve();
          });
        });
      } catch (e) {
        udpSocket.close();
        udp = undefined;
        throw e;
      }
      tcp = server;
    },
    async close() {
      udp?.close();
      udp = undefined;
      for (const c of connections) c.destroy();
      const server = tcp;
      tcp = undefined;
      if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
