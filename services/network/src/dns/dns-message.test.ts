import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DnsFormatError,
  DnsType,
  Rcode,
  buildQuery,
  buildResponse,
  parseMessage,
  readName,
} from "./dns-message.js";

describe("dns message codec", () => {
  it("round-trips a query and a response with A and PTR answers", () => {
    const query = parseMessage(buildQuery(0xbeef, "Web.SB", DnsType.A));
    expect(query).toMatchObject({
      id: 0xbeef,
      questions: [{ name: "web.sb", type: 1, class: 1 }],
      answers: [],
    });
    const reply = parseMessage(
      buildResponse(query, {
        rcode: Rcode.NOERROR,
        authoritative: true,
        answers: [
          { name: "web.sb", type: DnsType.A, ttl: 5, value: "10.201.0.2" },
          { name: "2.0.201.10.in-addr.arpa", type: DnsType.PTR, ttl: 5, value: "web.sb" },
        ],
      }),
    );
    expect(reply.id).toBe(0xbeef);
    expect(reply.flags & 0x8000).toBe(0x8000);
    expect(reply.flags & 0x0400).toBe(0x0400);
    expect(reply.answers).toEqual([
      { name: "web.sb", type: 1, class: 1, ttl: 5, address: "10.201.0.2" },
      { name: "2.0.201.10.in-addr.arpa", type: 12, class: 1, ttl: 5, target: "web.sb" },
    ]);
  });

  it("follows compression pointers and refuses loops", () => {
    // "a.b" at 0, then a pointer to offset 2 ("b").
    const buf = Buffer.from([1, 0x61, 1, 0x62, 0, 0xc0, 2]);
    expect(readName(buf, 5)).toEqual({ name: "b", next: 7, plain: true });
    const loop = Buffer.from([0xc0, 0]);
    expect(() => readName(loop, 0)).toThrow(DnsFormatError);
  });

  it("never fails with anything but DnsFormatError on random input", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          parseMessage(Buffer.from(bytes));
        } catch (e) {
          expect(e).toBeInstanceOf(DnsFormatError);
        }
      }),
    );
  });

  it("answers any query that parses, echoing its question bytes (labels with dots, odd bytes)", () => {
    const label = fc.uint8Array({ minLength: 1, maxLength: 63 });
    fc.assert(
      fc.property(fc.array(label, { maxLength: 4 }), fc.integer({ min: 0, max: 65535 }), (labels, type) => {
        const name = Buffer.concat([
          ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), l])),
          Buffer.from([0]),
        ]);
        const header = Buffer.from([0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        const tail = Buffer.from([type >> 8, type & 0xff, 0, 1]);
        let query: ReturnType<typeof parseMessage>;
        try {
          query = parseMessage(Buffer.concat([header, name, tail]));
        } catch (e) {
          expect(e).toBeInstanceOf(DnsFormatError); // longer than 255 bytes
          return;
        }
        for (const rcode of [Rcode.SERVFAIL, Rcode.REFUSED, Rcode.NXDOMAIN]) {
          const reply = buildResponse(query, {
            rcode,
            answers: [{ type: DnsType.A, ttl: 5, value: "10.0.0.1" }],
          });
          expect(reply.subarray(12, 12 + name.length + 4)).toEqual(Buffer.concat([name, tail]));
          expect(parseMessage(reply).answers[0]?.address).toBe("10.0.0.1");
        }
      }),
    );
  });
});
