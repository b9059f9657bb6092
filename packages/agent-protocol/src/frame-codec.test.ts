import { once } from "node:events";
import { type AddressInfo, type Socket, connect, createServer } from "node:net";
import { PassThrough } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FrameDecoder,
  FrameError,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
  decodeExitPayload,
  decodeResizePayload,
  decodeSignalPayload,
  encodeExitPayload,
  encodeFrame,
  encodeJsonFrame,
  encodeResizePayload,
  encodeSignalPayload,
  tryParseFrame,
  type Frame,
} from "./frame-codec.js";
import { FrameReadTimeoutError, FrameReader } from "./frame-reader.js";
import { FrameType, formatTypeByte, frameTypeName } from "./frame-types.js";

function decodeAll(bytes: Buffer, splits: number[] = []): Frame[] {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let start = 0;
  for (const at of [
    ...splits.filter((s) => s > 0 && s < bytes.byteLength).sort((a, b) => a - b),
    bytes.byteLength,
  ]) {
    decoder.push(bytes.subarray(start, at));
    start = at;
    for (let f = decoder.next(); f !== undefined; f = decoder.next())
      frames.push({ type: f.type, payload: Buffer.from(f.payload) });
  }
  decoder.end();
  return frames;
}

describe("frame codec", () => {
  it("lays out [u32 BE length = 1 + payload][type][payload]", () => {
    const frame = encodeFrame(FrameType.STDOUT, Buffer.from("hi"));
    expect([...frame]).toEqual([0, 0, 0, 3, 0x02, 0x68, 0x69]);
    expect([...encodeFrame(FrameType.KILL)]).toEqual([0, 0, 0, 1, 0x07]);
    expect(encodeJsonFrame(FrameType.FWD_REQ, { port: 80 }).subarray(5).toString()).toBe('{"port":80}');
  });

  it("round-trips every frame type", () => {
    for (const [name, type] of Object.entries(FrameType)) {
      const payload = Buffer.from(`payload of ${name}`);
      const [frame] = decodeAll(encodeFrame(type, payload));
      expect(frame!.type).toBe(type);
      expect(frame!.payload.equals(payload)).toBe(true);
      expect(frameTypeName(type)).toBe(name);
    }
    expect(frameTypeName(0xee)).toBe("0xee");
    expect(formatTypeByte(0x5)).toBe("0x05");
  });

  it("accepts a payload of exactly 1 MiB - 1 and rejects anything larger, on write and read", () => {
    const biggest = encodeFrame(FrameType.STDOUT, Buffer.alloc(MAX_PAYLOAD_SIZE, 7));
    expect(biggest.readUInt32BE(0)).toBe(MAX_FRAME_SIZE);
    expect(decodeAll(biggest)[0]!.payload.byteLength).toBe(MAX_PAYLOAD_SIZE);
    expect(() => encodeFrame(FrameType.STDOUT, Buffer.alloc(MAX_PAYLOAD_SIZE + 1))).toThrow(FrameError);

    const oversize = Buffer.from([0x00, 0x10, 0x00, 0x01, 0x02]);
    expect(() => tryParseFrame(oversize)).toThrow(/frame too large: 1048577 > 1048576/);
    const decoder = new FrameDecoder();
    decoder.push(oversize);
    expect(() => decoder.next()).toThrow(FrameError);
  });

  it("rejects a zero length field", () => {
    expect(() => tryParseFrame(Buffer.from([0, 0, 0, 0, 1]))).toThrow(/length is 0/);
    const decoder = new FrameDecoder();
    decoder.push(Buffer.from([0, 0, 0, 0]));
    expect(() => decoder.next()).toThrowError(expect.objectContaining({ kind: "zero-length" }));
  });

  it("TryParse: partial header, partial payload, complete frame", () => {
    const frame = encodeFrame(FrameType.STDERR, Buffer.from("abc"));
    expect(tryParseFrame(frame.subarray(0, 3))).toBeUndefined();
    expect(tryParseFrame(frame.subarray(0, 6))).toBeUndefined();
    const parsed = tryParseFrame(Buffer.concat([frame, Buffer.from([9, 9])]))!;
    expect(parsed.size).toBe(frame.byteLength);
    expect(parsed.type).toBe(FrameType.STDERR);
    expect(parsed.payload.toString()).toBe("abc");
  });

  it("tells a clean EOF from an EOF inside a frame", () => {
    const frame = encodeFrame(FrameType.STDOUT, Buffer.from("abc"));
    expect(decodeAll(frame)).toHaveLength(1);
    for (const cut of [1, 4, 5, 7]) {
      expect(() => decodeAll(frame.subarray(0, cut))).toThrowError(
        expect.objectContaining({ kind: "unexpected-eof" }),
      );
    }
  });

  it("encodes EXIT and RESIZE payloads", () => {
    expect(decodeExitPayload(encodeExitPayload(-1))).toBe(-1);
    expect(decodeExitPayload(encodeExitPayload(137))).toBe(137);
    expect([...encodeExitPayload(1)]).toEqual([0, 0, 0, 1]);
    expect(decodeExitPayload(Buffer.from([0, 0]))).toBeUndefined();
    expect([...encodeResizePayload({ rows: 40, cols: 120 })]).toEqual([0, 40, 0, 120]);
    expect(decodeResizePayload(encodeResizePayload({ rows: 50, cols: 200 }))).toEqual({
      rows: 50,
      cols: 200,
    });
    expect(decodeResizePayload(Buffer.from([0, 1, 0]))).toBeUndefined();
  });

  it("encodes SIGNAL payloads as names and refuses anything else", () => {
    expect(encodeSignalPayload("SIGINT").toString()).toBe("SIGINT");
    expect(decodeSignalPayload(encodeSignalPayload("SIGTERM"))).toBe("SIGTERM");
    expect(decodeSignalPayload(encodeSignalPayload("SIGRTMIN"))).toBe("SIGRTMIN");
    for (const bad of ["", "INT", "sigint", "SIG", "SIGINT\n", "SIG-1", "SIGAAAAAAAAAAAAAAAAAAAAA"])
      expect(decodeSignalPayload(Buffer.from(bad))).toBeUndefined();
  });

  it("decodes any frame sequence split at any points (property)", () => {
    const frameArb = fc.record({
      type: fc.integer({ min: 0, max: 255 }),
      payload: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 20 }),
        fc.array(fc.nat(8000), { maxLength: 30 }),
        (frames, splits) => {
          const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.payload)));
          const decoded = decodeAll(bytes, splits);
          expect(decoded.map((f) => [f.type, [...f.payload]])).toEqual(
            frames.map((f) => [f.type, [...f.payload]]),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("never throws anything but FrameError on random bytes (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2000 }),
        fc.array(fc.nat(2000), { maxLength: 10 }),
        (bytes, splits) => {
          try {
            decodeAll(Buffer.from(bytes), splits);
          } catch (err) {
            expect(err).toBeInstanceOf(FrameError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("FrameReader", () => {
  it("returns null at a clean EOF and rejects an EOF inside a frame", async () => {
    const clean = new PassThrough();
    const r1 = new FrameReader(clean);
    clean.end(encodeFrame(FrameType.EXIT, encodeExitPayload(0)));
    expect((await r1.read())!.type).toBe(FrameType.EXIT);
    expect(await r1.read()).toBeNull();

    const cut = new PassThrough();
    const r2 = new FrameReader(cut);
    cut.end(encodeFrame(FrameType.STDOUT, Buffer.from("abcdef")).subarray(0, 7));
    await expect(r2.read()).rejects.toMatchObject({ kind: "unexpected-eof" });
  });

  it("times out a read and gives back undecoded bytes on detach", async () => {
    const stream = new PassThrough();
    const reader = new FrameReader(stream);
    await expect(reader.read(20)).rejects.toBeInstanceOf(FrameReadTimeoutError);
    stream.write(Buffer.concat([encodeFrame(FrameType.FWD_REQ, "{}"), Buffer.from("raw")]));
    expect((await reader.read())!.type).toBe(FrameType.FWD_REQ);
    expect(reader.detach().toString()).toBe("raw");
  });

  it("2×1000 frames written concurrently to one TCP socket arrive uncorrupted", async () => {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const accepted = once(server, "connection");
    const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
    const [peer] = (await accepted) as [Socket];
    try {
      const reader = new FrameReader(peer);
      const writer = async (type: number, tag: string) => {
        for (let i = 0; i < 1000; i++) {
          const payload = Buffer.alloc(100 + (i % 900), `${tag}${i}|`);
          client.write(encodeFrame(type, payload));
          if (i % 50 === 0) await new Promise((r) => setImmediate(r));
        }
      };
      const writing = Promise.all([writer(FrameType.STDOUT, "o"), writer(FrameType.STDERR, "e")]);
      const seen = { [FrameType.STDOUT]: 0, [FrameType.STDERR]: 0 } as Record<number, number>;
      for (let n = 0; n < 2000; n++) {
        const frame = (await reader.read())!;
        const tag = frame.type === FrameType.STDOUT ? "o" : "e";
        const i = seen[frame.type]!;
        expect(frame.payload.equals(Buffer.alloc(100 + (i % 900), `${tag}${i}|`))).toBe(true);
        seen[frame.type] = i + 1;
      }
      await writing;
      expect(seen).toEqual({ [FrameType.STDOUT]: 1000, [FrameType.STDERR]: 1000 });
    } finally {
      client.destroy();
      peer.destroy();
      server.close();
    }
  });
});
