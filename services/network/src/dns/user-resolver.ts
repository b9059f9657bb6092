import { type Socket as UdpSocket, createSocket } from "node:dgram";
import { type Server, type Socket, createServer } from "node:net";
import type { Logger } from "@bhatti/runtime";
import { type EgressPolicy, policyAllowsHost } from "../domain/egress-policy.js";
import { isNonPublic, parseIpv4 } from "../domain/ipv4.js";
import {
  type AnswerRecord,
  type DnsMessage,
  DnsType,
  Rcode,
  buildResponse,
  headerOnlyResponse,
  isResponse,
  opcodeOf,
  parseMessage,
} from "./dns-message.js";
import { type Upstream, forwardQuery } from "./dns-forwarder.js";

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
  upstreams: () => readonly Upstream[];
  timeoutMs: number;
  directory: ResolverDirectory;
  logger: Logger;
}

export interface UserResolver {
  start(): Promise<void>;
  close(): Promise<void>;
  /** Answers one query as if it came from `source` (also used by the UDP and TCP servers). */
  answer(query: Buffer, source: string, transport: "udp" | "tcp"): Promise<Buffer | undefined>;
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
  let udp: UdpSocket | undefined;
  let tcp: Server | undefined;
  const connections = new Set<Socket>();

  async function forward(
    query: Buffer,
    message: DnsMessage,
    source: string,
    policy: EgressPolicy,
    transport: "udp" | "tcp",
  ): Promise<Buffer> {
    let reply: Buffer;
    try {
      reply = await forwardQuery(query, options.upstreams(), transport, options.timeoutMs);
    } catch (e) {
      logger.debug("dns forward failed", { name: message.questions[0]?.name, error: (e as Error).message });
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
    const records = parsed.answers.filter((a) => a.type === DnsType.A && a.address !== undefined);
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

  async function answer(
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
    const policy = directory.policyOf(source) ?? { mode: "allow-all" };

    const reverse = reverseAddress(question.name);
    const siblingOfReverse = reverse === undefined ? undefined : directory.nameOf(reverse);
    if (siblingOfReverse !== undefined) {
      const answers: AnswerRecord[] =
        question.type === DnsType.PTR || question.type === DnsType.ANY
          ? [
              {
                name: question.name,
                type: DnsType.PTR,
                ttl: SIBLING_TTL,
                value: `${siblingOfReverse}.${SIBLING_SUFFIX}`,
              },
            ]
          : [];
      return buildResponse(message, { rcode: Rcode.NOERROR, authoritative: true, answers });
    }

    const sibling = canonicalSiblingName(question.name);
    const addresses = directory.addressesOf(sibling.name);
    if (addresses.length > 0) {
      const answers: AnswerRecord[] =
        question.type === DnsType.A || question.type === DnsType.ANY
          ? addresses.map((a) => ({ name: question.name, type: DnsType.A, ttl: SIBLING_TTL, value: a }))
          : []; // NODATA for AAAA and others: the name exists, with IPv4 only
      return buildResponse(message, { rcode: Rcode.NOERROR, authoritative: true, answers });
    }
    if (sibling.explicit) return buildResponse(message, { rcode: Rcode.NXDOMAIN, authoritative: true });

    if (!policyAllowsHost(policy, question.name)) return buildResponse(message, { rcode: Rcode.REFUSED });
    return forward(query, message, source, policy, transport);
  }

  function serveTcp(socket: Socket): void {
    connections.add(socket);
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on("close", () => connections.delete(socket));
    socket.on("error", () => socket.destroy());
    let pending = Buffer.alloc(0);
    let chain = Promise.resolve();
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const query = pending.subarray(2, 2 + pending.readUInt16BE(0));
        pending = pending.subarray(2 + query.length);
        // Replies go out in query order.
        chain = chain.then(async () => {
          const reply = await answer(query, socket.remoteAddress ?? "", "tcp");
          if (reply === undefined || socket.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([len, reply]));
        });
      }
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
        void answer(msg, rinfo.address, "udp").then(
          (reply) => {
            if (reply !== undefined) udpSocket.send(reply, rinfo.port, rinfo.address);
          },
          (e: unknown) => logger.warn("dns query failed", { error: e }),
        );
      });
      udp = udpSocket;
      const server = createServer(serveTcp);
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
