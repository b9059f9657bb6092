/**
 * A small DNS message codec (RFC 1035): enough to read queries, read the A/CNAME answers of
 * forwarded responses, and write the resolver's own answers. Names are returned lowercase
 * without the trailing dot.
 */

export const DnsType = { A: 1, CNAME: 5, PTR: 12, AAAA: 28, ANY: 255 } as const;
export const DnsClass = { IN: 1 } as const;
export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
  /**
   * False when a wire label holds a byte that a dotted name cannot show faithfully (a dot, a
   * control byte, a space...): such a name must not be matched against names or policies.
   */
  plain: boolean;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** Dotted address for A records. */
  address?: string;
  /** Target name for CNAME and PTR records. */
  target?: string;
}

export interface DnsMessage {
  id: number;
  flags: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  /** The first question's wire bytes (name, type, class) as received; echoed in responses. */
  questionBytes: Buffer | undefined;
}

export class DnsFormatError extends Error {
  override readonly name = "DnsFormatError";
}

export const isResponse = (m: DnsMessage): boolean => (m.flags & QR) !== 0;
export const opcodeOf = (m: DnsMessage): number => (m.flags >> 11) & 0xf;
export const rcodeOf = (m: DnsMessage): number => m.flags & 0xf;
export const isTruncated = (m: DnsMessage): boolean => (m.flags & TC) !== 0;

function need(buf: Buffer, offset: number, length: number): void {
  if (offset + length > buf.length) throw new DnsFormatError("message is truncated");
}

/** Label bytes that a dotted, lowercase name shows faithfully. */
const plainLabel = /^[a-z0-9_-]+$/;

/** Reads a possibly compressed name; returns it and the offset after it in the original place. */
export function readName(buf: Buffer, start: number): { name: string; next: number; plain: boolean } {
  const labels: string[] = [];
  let offset = start;
  let next = -1;
  let jumps = 0;
  let length = 0;
  let plain = true;
  for (;;) {
    need(buf, offset, 1);
    const len = buf[offset] ?? 0;
    if ((len & 0xc0) === 0xc0) {
      need(buf, offset, 2);
      if (next === -1) next = offset + 2;
      if (++jumps > 32) throw new DnsFormatError("compression loop");
      offset = ((len & 0x3f) << 8) | (buf[offset + 1] ?? 0);
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsFormatError("unsupported label type");
    offset++;
    if (len === 0) break;
    need(buf, offset, len);
    const label = buf.toString("latin1", offset, offset + len).toLowerCase();
    if (!plainLabel.test(label)) plain = false;
    labels.push(label);
    length += len + 1;
    if (length > 255) throw new DnsFormatError("name too long");
    offset += len;
  }
  return { name: labels.join("."), next: next === -1 ? offset : next, plain };
}

export function parseMessage(buf: Buffer): DnsMessage {
  need(buf, 0, 12);
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qdcount = buf.readUInt16BE(4);
  const ancount = buf.readUInt16BE(6);
  let offset = 12;
  const questions: DnsQuestion[] = [];
  let questionBytes: Buffer | undefined;
  for (let i = 0; i < qdcount; i++) {
    const { name, next, plain } = readName(buf, offset);
    need(buf, next, 4);
    questions.push({ name, type: buf.readUInt16BE(next), class: buf.readUInt16BE(next + 2), plain });
    // A copy: a response must not keep the whole received buffer alive.
    if (i === 0) questionBytes = Buffer.from(buf.subarray(offset, next + 4));
    offset = next + 4;
  }
  const answers: DnsRecord[] = [];
  for (let i = 0; i < ancount; i++) {
    const { name, next } = readName(buf, offset);
    need(buf, next, 10);
    const type = buf.readUInt16BE(next);
    const rdlength = buf.readUInt16BE(next + 8);
    const rdata = next + 10;
    need(buf, rdata, rdlength);
    const record: DnsRecord = {
      name,
      type,
      class: buf.readUInt16BE(next + 2),
      ttl: buf.readUInt32BE(next + 4),
    };
    if (type === DnsType.A && rdlength === 4) {
      record.address = [0, 1, 2, 3].map((k) => buf[rdata + k]).join(".");
    } else if (type === DnsType.CNAME || type === DnsType.PTR) {
      record.target = readName(buf, rdata).name;
    }
    answers.push(record);
    offset = rdata + rdlength;
  }
  return { id, flags, questions, answers, questionBytes };
}

export function encodeName(name: string): Buffer {
  const parts = name === "" ? [] : name.split(".");
  const chunks = parts.map((label) => {
    const bytes = Buffer.from(label, "latin1");
    if (bytes.length === 0 || bytes.length > 63) throw new DnsFormatError(`bad label in ${name}`);
    return Buffer.concat([Buffer.from([bytes.length]), bytes]);
  });
  return Buffer.concat([...chunks, Buffer.from([0])]);
}

export interface AnswerRecord {
  /** The owner name; undefined means the question's name (written as a pointer to it). */
  name?: string;
  type: number;
  ttl: number;
  /** A: dotted address; PTR/CNAME: a name. */
  value: string;
}

/** A compression pointer to the first question's name, which always starts at offset 12. */
const QUESTION_NAME_POINTER = Buffer.from([0xc0, 12]);

function encodeRecord(r: AnswerRecord): Buffer {
  const rdata = r.type === DnsType.A ? Buffer.from(r.value.split(".").map(Number)) : encodeName(r.value);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(DnsClass.IN, 2);
  fixed.writeUInt32BE(r.ttl, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  const owner = r.name === undefined ? QUESTION_NAME_POINTER : encodeName(r.name);
  return Buffer.concat([owner, fixed, rdata]);
}

export interface ResponseOptions {
  rcode: number;
  authoritative?: boolean;
  answers?: readonly AnswerRecord[];
}

/**
 * A response to `query` that echoes its id, opcode, RD bit and first question. The question
 * is echoed as the bytes received, never re-encoded, so any name that parsed can be answered.
 */
export function buildResponse(query: DnsMessage, options: ResponseOptions): Buffer {
  const answers = options.answers ?? [];
  if (answers.some((a) => a.name === undefined) && query.questionBytes === undefined) {
    throw new DnsFormatError("an answer names the question, but there is none");
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.id, 0);
  header.writeUInt16BE(
    QR | (query.flags & 0x7800) | (options.authoritative ? AA : 0) | (query.flags & RD) | RA | options.rcode,
    2,
  );
  const question = query.questionBytes;
  header.writeUInt16BE(question === undefined ? 0 : 1, 4);
  header.writeUInt16BE(answers.length, 6);
  const parts: Buffer[] = [header];
  if (question !== undefined) parts.push(question);
  for (const a of answers) parts.push(encodeRecord(a));
  return Buffer.concat(parts);
}

/** A query message, for tests and tools. */
export function buildQuery(id: number, name: string, type: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(RD, 2);
  header.writeUInt16BE(1, 4);
  const qfixed = Buffer.alloc(4);
  qfixed.writeUInt16BE(type, 0);
  qfixed.writeUInt16BE(DnsClass.IN, 2);
  return Buffer.concat([header, encodeName(name), qfixed]);
}

/** A minimal error reply when only the header could be read. */
export function headerOnlyResponse(query: Buffer, rcode: number): Buffer | undefined {
  if (query.length < 12) return undefined;
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  header.writeUInt16BE(QR | (query.readUInt16BE(2) & (0x7800 | RD)) | RA | rcode, 2);
  return header;
}
