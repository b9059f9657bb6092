// The wire format between the agent and its resident spawner (agent/spawner/spawner.c, which
// documents it in full). Requests go over the spawner's stdin, replies come back on its stdout;
// both are socketpairs inside the sandbox, so little-endian is the one byte order.

export const SpawnerReplyType = {
  /** Once, when the spawner runs: pid = its own. */
  READY: 0,
  /** The command exec'd: pid, leading its own session and process group. */
  STARTED: 1,
  /** The command could not start: value = errno (chdir, setuid, execve…). */
  FAILED: 2,
  /** A started command was reaped: value = its wait status. */
  EXITED: 3,
  /** The spawner could not prepare the start (stdio connect, pipe, fork): value = errno. */
  BROKEN: 4,
} as const;

export const SpawnerFlag = {
  /** Drop to uid/gid (supplementary groups dropped first, as libuv does). */
  CREDENTIALS: 1,
  /** stdin /dev/null, stdout and stderr the output file; else connect-back stdio sockets. */
  DETACHED: 2,
  /** fds 0, 1, 2 are the pooled connections named in `slots` (not with DETACHED). */
  POOLED: 4,
  /** stdin /dev/null; only stdout and stderr connect back (not with DETACHED or POOLED). */
  STDIN_NULL: 8,
} as const;

/**
 * The stream number of a pooled connection's header: u32 slot, u32 3, u32 generation (the
 * number the agent gave this spawner start; an earlier spawner's connections are dropped).
 */
export const STDIO_STREAM_POOLED = 3;
/** The rest of a pooled connection's header after the common 8 bytes: u32 generation. */
export const POOLED_HEADER_EXTRA_BYTES = 4;

export interface SpawnerRequest {
  id: number;
  flags: number;
  uid: number;
  gid: number;
  /** The executable (already resolved against PATH). */
  path: string;
  cwd: string;
  /** Detached only: the output file the agent created. */
  output: string;
  /** argv[0] is what the program sees as its name. */
  argv: readonly string[];
  /** "NAME=value" entries. */
  env: readonly string[];
  /** With POOLED: the pooled connections that become fds 0, 1, 2. */
  slots?: readonly [number, number, number];
}

export interface SpawnerReply {
  type: number;
  id: number;
  pid: number;
  value: number;
}

export const SPAWNER_REPLY_BYTES = 16;
/** Connect-back stdio sockets start with u32 id, u32 stream (0 stdin, 1 stdout, 2 stderr). */
export const STDIO_HEADER_BYTES = 8;

/** Length-prefixed request; strings are NUL-terminated (callers reject strings holding NUL). */
export function encodeSpawnerRequest(r: SpawnerRequest): Buffer {
  const strings = [r.path, r.cwd, r.output, ...r.argv, ...r.env].map((s) => Buffer.from(`${s}\0`));
  const slotBytes = r.slots !== undefined ? 12 : 0;
  const body = 24 + slotBytes + strings.reduce((n, b) => n + b.byteLength, 0);
  const head = Buffer.allocUnsafe(4 + 24 + slotBytes);
  head.writeUInt32LE(body, 0);
  head.writeUInt32LE(r.id, 4);
  head.writeUInt32LE(r.flags, 8);
  head.writeUInt32LE(r.uid, 12);
  head.writeUInt32LE(r.gid, 16);
  head.writeUInt32LE(r.argv.length, 20);
  head.writeUInt32LE(r.env.length, 24);
  if (r.slots !== undefined) {
    head.writeUInt32LE(r.slots[0], 28);
    head.writeUInt32LE(r.slots[1], 32);
    head.writeUInt32LE(r.slots[2], 36);
  }
  return Buffer.concat([head, ...strings]);
}

/** Splits the spawner's stdout into fixed-size replies. */
export class SpawnerReplyDecoder {
  private rest: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): SpawnerReply[] {
    const data = this.rest.byteLength === 0 ? chunk : Buffer.concat([this.rest, chunk]);
    const replies: SpawnerReply[] = [];
    let off = 0;
    for (; off + SPAWNER_REPLY_BYTES <= data.byteLength; off += SPAWNER_REPLY_BYTES) {
      replies.push({
        type: data.readUInt32LE(off),
        id: data.readUInt32LE(off + 4),
        pid: data.readInt32LE(off + 8),
        value: data.readInt32LE(off + 12),
      });
    }
    this.rest = data.subarray(off);
    return replies;
  }
}

/** A wait status as ChildProcess reports it: an exit code, or the number of the killing signal. */
export function decodeWaitStatus(status: number): { code: number | null; signal: number | null } {
  const signal = status & 0x7f;
  if (signal === 0) return { code: (status >> 8) & 0xff, signal: null };
  return { code: null, signal };
}
