import { formatTypeByte } from "./frame-types.js";

/** Largest allowed value of the length field (type byte + payload): 1 MiB. */
export const MAX_FRAME_SIZE = 1 << 20;
/** Largest payload a single frame can carry. */
export const MAX_PAYLOAD_SIZE = MAX_FRAME_SIZE - 1;
/** Bytes before the payload: u32 length + u8 type. */
export const FRAME_HEADER_SIZE = 5;

export interface Frame {
  type: number;
  payload: Buffer;
}

export type FrameErrorKind = "too-large" | "zero-length" | "unexpected-eof";

/** A stream that is not a valid sequence of frames. The connection carrying it must be closed. */
export class FrameError extends Error {
  override readonly name = "FrameError";
  constructor(
    readonly kind: FrameErrorKind,
    message: string,
  ) {
    super(message);
  }
}

function tooLarge(length: number): FrameError {
  return new FrameError("too-large", `frame too large: ${length} > ${MAX_FRAME_SIZE}`);
}

/**
 * Encodes one frame into a single buffer, so that it reaches the socket in one write and
 * frames written by different producers can never interleave.
 */
export function encodeFrame(type: number, payload?: Uint8Array | string): Buffer {
  const body =
    payload === undefined ? undefined : typeof payload === "string" ? Buffer.from(payload) : payload;
  const bodyLength = body?.byteLength ?? 0;
  const length = 1 + bodyLength;
  if (length > MAX_FRAME_SIZE) throw tooLarge(length);
  const frame = Buffer.allocUnsafe(4 + length);
  frame.writeUInt32BE(length, 0);
  frame[4] = type;
  if (body !== undefined && bodyLength > 0) frame.set(body, FRAME_HEADER_SIZE);
  return frame;
}

/** Encodes a frame whose payload is compact JSON. */
export function encodeJsonFrame(type: number, value: unknown): Buffer {
  return encodeFrame(type, JSON.stringify(value));
}

export interface ParsedFrame extends Frame {
  /** Bytes the frame occupies at the front of the buffer (4 + length). */
  size: number;
}

/**
 * Is there a complete frame at the front of `buf`? Returns it, or undefined when more bytes
 * are needed. Throws FrameError when the length field is invalid (0 or above 1 MiB): such a
 * stream can never become valid.
 */
export function tryParseFrame(buf: Uint8Array): ParsedFrame | undefined {
  if (buf.byteLength < 4) return undefined;
  const length = ((buf[0]! << 24) >>> 0) + (buf[1]! << 16) + (buf[2]! << 8) + buf[3]!;
  if (length === 0) throw new FrameError("zero-length", "invalid frame: length is 0");
  if (length > MAX_FRAME_SIZE) throw tooLarge(length);
  const size = 4 + length;
  if (buf.byteLength < size) return undefined;
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return { type: view[4]!, payload: view.subarray(FRAME_HEADER_SIZE, size), size };
}

/**
 * Incremental decoder: feed it socket chunks, take complete frames out. Chunks are kept in
 * a list and only joined when a frame spans them, so a large frame arriving in many small
 * chunks costs one copy, not one per chunk.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Bytes received but not yet returned as frames. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(
      Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength),
    );
    this.buffered += chunk.byteLength;
  }

  /** The next complete frame, or undefined. Throws FrameError on an invalid length field. */
  next(): Frame | undefined {
    if (this.buffered < 4) return undefined;
    let head = this.chunks[0]!;
    if (head.byteLength < 4) head = this.coalesce(4);
    const length = head.readUInt32BE(0);
    if (length === 0) throw new FrameError("zero-length", "invalid frame: length is 0");
    if (length > MAX_FRAME_SIZE) throw tooLarge(length);
    const size = 4 + length;
    if (this.buffered < size) return undefined;
    if (head.byteLength < size) head = this.coalesce(size);
    const frame: Frame = { type: head[4]!, payload: head.subarray(FRAME_HEADER_SIZE, size) };
    if (head.byteLength === size) this.chunks.shift();
    else this.chunks[0] = head.subarray(size);
    this.buffered -= size;
    return frame;
  }

  /**
   * Called at end of stream: throws FrameError("unexpected-eof") when a partial frame is
   * buffered (EOF inside a frame); returns normally for a clean EOF between frames.
   */
  end(): void {
    if (this.buffered > 0) {
      throw new FrameError("unexpected-eof", `unexpected EOF: ${this.buffered} bytes of a partial frame`);
    }
  }

  /** Removes and returns every buffered byte (used when a connection switches to raw relay). */
  takeRemainder(): Buffer {
    const rest = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private coalesce(bytes: number): Buffer {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < bytes) {
      const chunk = this.chunks.shift()!;
      parts.push(chunk);
      have += chunk.byteLength;
    }
    const joined = Buffer.concat(parts, have);
    this.chunks.unshift(joined);
    return joined;
  }
}

/** EXIT payload: i32 big-endian. */
export function encodeExitPayload(code: number): Buffer {
  const buf = Buffer.allocUnsafe(4);
  buf.writeInt32BE(code | 0, 0);
  return buf;
}

export function decodeExitPayload(payload: Uint8Array): number | undefined {
  if (payload.byteLength < 4) return undefined;
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).readInt32BE(0);
}

export interface TerminalSize {
  rows: number;
  cols: number;
}

/** RESIZE payload: u16 rows, u16 cols, both big-endian. */
export function encodeResizePayload(size: TerminalSize): Buffer {
  const buf = Buffer.allocUnsafe(4);
  buf.writeUInt16BE(size.rows & 0xffff, 0);
  buf.writeUInt16BE(size.cols & 0xffff, 2);
  return buf;
}

/** Undefined when shorter than 4 bytes; v1 ignores such a RESIZE. */
export function decodeResizePayload(payload: Uint8Array): TerminalSize | undefined {
  if (payload.byteLength < 4) return undefined;
  const view = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return { rows: view.readUInt16BE(0), cols: view.readUInt16BE(2) };
}

/** SIGNAL payload (bhatti v2): the signal's name in ASCII, e.g. "SIGINT". */
export function encodeSignalPayload(name: string): Buffer {
  return Buffer.from(name, "ascii");
}

/** The signal name, or undefined when the payload does not look like one ("SIG" + A-Z0-9). */
export function decodeSignalPayload(payload: Uint8Array): string | undefined {
  const name = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("latin1");
  return /^SIG[A-Z0-9]{2,10}$/.test(name) ? name : undefined;
}

/** `unexpected frame type 0xNN`: the text v1 uses for a frame that has no place here. */
export function unexpectedFrameText(type: number): string {
  return `unexpected frame type ${formatTypeByte(type)}`;
}
