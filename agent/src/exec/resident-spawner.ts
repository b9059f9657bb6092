import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { type Server, type Socket, createServer } from "node:net";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentLogger } from "../logger.js";
import type { CommandSpec } from "./command-spec.js";
import {
  POOLED_HEADER_EXTRA_BYTES,
  STDIO_HEADER_BYTES,
  STDIO_STREAM_POOLED,
  SpawnerFlag,
  type SpawnerReply,
  SpawnerReplyDecoder,
  SpawnerReplyType,
  decodeWaitStatus,
  encodeSpawnerRequest,
} from "./spawner-protocol.js";

/** A restart sooner than this after the previous start waits for the rest of it. */
const RESTART_BACKOFF_MS = 1_000;
/** Starts that never became READY in a row before the agent gives up on the spawner. */
const MAX_FAILED_STARTS = 5;
/**
 * Pre-connected stdio connections the spawner keeps (3 per exec; the spawner caps it at 64).
 * Off by default: with the pool on, the agent's loop spun at ~50 % of a CPU after an engine
 * cold cycle (checkpoint, restore) in 5 of 10 probes, against 1 of 11 with it off (probe:
 * bench/spin/idle-after-restore.ts, SPIN_MODE=pool12; figures: bench/prestdio/results-*.txt),
 * and a template checkpoint would carry a full pool into every create.
 * BHATTI_AGENT_SPAWNER_POOL=12 turns it on (benches).
 */
export const DEFAULT_STDIO_POOL = 0;

/**
 * The ERROR text of an exec whose spawner died under it: while the command ran (its exit
 * status is lost, its output was delivered), or between the request and the start report
 * (whether it started is unknown: it may have, and killed the spawner itself).
 */
export const SPAWNER_LOST_TEXT =
  "exec: the sandbox's process spawner exited; the command's exit status is unknown";

/** A spawner-side failure that is not the command's: carries the ERROR text as is. */
export class SpawnerLostError extends Error {
  override readonly name = "SpawnerLostError";
}

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno as Record<string, number>).map(([name, n]) => [n, name]),
);

/** The errors Node's spawn() emits as "spawn PATH CODE"; any other it throws as "spawn CODE". */
const EMITTED_SPAWN_ERRORS = new Set(["EACCES", "EAGAIN", "EMFILE", "ENFILE", "ENOENT"]);

/** A start failure shaped like the one Node's spawn() gives, so spawnErrorText words it the same. */
function spawnError(errno: number, path: string): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `E${errno}`;
  const syscall = EMITTED_SPAWN_ERRORS.has(code) ? `spawn ${path}` : "spawn";
  const err = new Error(`${syscall} ${code}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  if (syscall !== "spawn") err.path = path;
  return err;
}

/**
 * A command the spawner started, with the ChildProcess surface the exec handlers use: pid,
 * stdin/stdout/stderr (the connect-back sockets; null for a detached command), "close"
 * (code, signal) once it exited AND stdout and stderr reached EOF, or "error" if the
 * spawner died while it ran.
 */
export class SpawnedCommand extends EventEmitter {
  private exitStatus: number | undefined;
  private openStreams: number;
  private lost = false;
  private finished = false;

  constructor(
    readonly pid: number,
    readonly stdin: Socket | null,
    readonly stdout: Socket | null,
    readonly stderr: Socket | null,
  ) {
    super();
    this.openStreams = 0;
    for (const stream of [stdout, stderr]) {
      // A quick command's empty stream may have ended (and closed) while the start completed:
      // 'end' only comes once its buffer is empty, so a destroyed one has nothing left to read.
      if (stream === null || stream.destroyed) continue;
      this.openStreams++;
      stream.once("close", () => {
        this.openStreams--;
        this.settle();
      });
      stream.on("error", () => {
        // ECONNRESET and the like end the stream; "close" follows.
      });
    }
    if (stdin !== null) {
      stdin.on("error", () => {
        // EPIPE: the command closed its stdin; extra input is dropped.
      });
      // Nothing is read from the command's stdin side; drained so its EOF is seen.
      stdin.resume();
    }
  }

  /** The spawner reaped it. */
  exited(status: number): void {
    this.exitStatus = status;
    this.settle();
  }

  /** The spawner died before reporting the exit: finish with an error once the output ends. */
  spawnerLost(): void {
    this.lost = true;
    this.settle();
  }

  private settle(): void {
    if (this.finished || this.openStreams > 0) return;
    if (this.exitStatus === undefined && !this.lost) return;
    this.finished = true;
    this.stdin?.destroy();
    const status = this.exitStatus;
    // Emitted from the next turn: a command that ended before its starter got it back (awaited)
    // must still reach the listeners attached right after.
    setImmediate(() => {
      if (status !== undefined) {
        const { code, signal } = decodeWaitStatus(status);
        this.emit("close", code, signal);
      } else {
        this.emit("error", new SpawnerLostError(SPAWNER_LOST_TEXT));
      }
    });
  }
}

interface PendingStart {
  spec: CommandSpec;
  detached: boolean;
  /** stdin is /dev/null: only stdout and stderr connect back. */
  stdinNull: boolean;
  pid: number | undefined;
  stdio: (Socket | undefined)[];
  exitStatus: number | undefined;
  resolve(command: SpawnedCommand | undefined): void;
  reject(err: Error): void;
}

/**
 * The agent's resident spawner: one small static process (agent/spawner/spawner.c) that
 * forks+execs every one-shot and detached command, so Node never forks its large address
 * space (under gVisor a fork copies the whole map). Started once; restarted when it dies
 * (a fallback to Node's spawn covers the execs meanwhile).
 *
 * stdio: the command's fds 0, 1, 2 are connections from the spawner to a Unix socket in a
 * root-only directory (0700; the socket itself 0600; reached through a pinned fd of the
 * directory). The spawner keeps a pool of them connected ahead of time (numbered slots, held
 * here in `pool`) and a request names three; with fewer than three pooled, the spawner
 * connects three times for that request (each connection naming it), as before the pool.
 */
export class ResidentSpawner {
  private proc: ChildProcess | undefined;
  private ready = false;
  private closed = false;
  /** Between start() and the stdio socket listening. */
  private listening = false;
  private dir: string | undefined;
  private server: Server | undefined;
  private nextId = 1;
  private lastStart = 0;
  private failedStarts = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly pending = new Map<number, PendingStart>();
  private readonly running = new Map<number, SpawnedCommand | { detachedPid: number }>();
  /** Idle pooled connections of the current spawner: slot → socket (header read, paused). */
  private readonly pool = new Map<number, Socket>();
  /** This spawner start's number, in its argv and in its pooled connections' headers. */
  private generation = 0;
  /** The spawner's pid once it is READY (tests and logs). */
  pid: number | undefined;
  /** How attached commands got their stdio (tests, benches). */
  readonly stdioCounts = { pooled: 0, connectBack: 0 };

  /**
   * `runtimeParent`: where the stdio socket's private directory is made (a sandbox's /run/bhatti-agent,
   * out of the user's sight; the temp dir for a standalone agent).
   */
  constructor(
    private readonly binary: string,
    private readonly log: AgentLogger,
    private readonly runtimeParent: string = tmpdir(),
    /** Pooled stdio connections to keep (0: connect back for every command). */
    private readonly poolSize: number = DEFAULT_STDIO_POOL,
  ) {}

  /** Idle pooled connections the agent holds now (tests). */
  get pooledIdle(): number {
    return this.pool.size;
  }

  /** The idle pooled connections (tests: closing one must not wedge anything). */
  pooledSockets(): Socket[] {
    return [...this.pool.values()];
  }

  /** Starts the spawner (again). Commands use it from its READY on. */
  start(): void {
    if (this.closed || this.proc !== undefined || this.listening) return;
    this.lastStart = Date.now();
    if (this.server !== undefined) {
      this.spawnProcess();
      return;
    }
    // The stdio socket listens before the spawner can connect to it.
    this.listening = true;
    try {
      this.listen(() => {
        this.listening = false;
        this.spawnProcess();
      });
    } catch (err) {
      // No temp dir to listen in (a read-only /tmp…): counted as a failed start.
      this.listening = false;
      this.onGone(undefined, err as Error);
    }
  }

  private spawnProcess(): void {
    if (this.closed || this.proc !== undefined) return;
    const socketPath = join(this.dir!, "stdio.sock");
    let proc: ChildProcess;
    try {
      this.generation = (this.generation + 1) >>> 0;
      const args =
        this.poolSize > 0 ? [socketPath, String(this.poolSize), String(this.generation)] : [socketPath];
      proc = spawn(this.binary, args, { stdio: ["pipe", "pipe", "inherit"], env: {} });
    } catch (err) {
      this.onGone(undefined, err as Error);
      return;
    }
    this.proc = proc;
    const decoder = new SpawnerReplyDecoder();
    proc.stdout!.on("data", (chunk: Buffer) => {
      for (const reply of decoder.push(chunk)) this.onReply(reply);
    });
    proc.stdin!.on("error", () => {
      // EPIPE: the spawner is gone; "exit" follows.
    });
    proc.once("error", (err) => this.onGone(proc, err));
    // "close", not "exit": replies it wrote before dying are read first.
    proc.once("close", () => this.onGone(proc, undefined));
  }

  /**
   * Starts `spec` through the spawner. Resolves undefined when the spawner cannot take it now
   * (not READY, restarting, or a string holding NUL that Node's spawn must reject): the caller
   * uses Node's spawn. Rejects with spawn()'s kind of error when the command cannot start.
   * `output`: a detached command's output file (created and owned by the caller).
   */
  startCommand(spec: CommandSpec, output?: string): Promise<SpawnedCommand | undefined> {
    const proc = this.proc;
    if (!this.ready || proc === undefined) {
      if (!this.closed && proc === undefined && this.restartTimer === undefined) this.scheduleRestart();
      return Promise.resolve(undefined);
    }
    const env = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
    const strings = [spec.path, spec.cwd, output ?? "", ...spec.argv, ...env];
    if (strings.some((s) => s.includes("\0"))) return Promise.resolve(undefined);
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_fff0 ? 1 : this.nextId + 1;
    // stdin /dev/null: two connections of its own (the pool's come in threes).
    const stdinNull = output === undefined && spec.stdinNull;
    const pooled = output === undefined && !stdinNull ? this.takePooled() : undefined;
    if (output === undefined) {
      if (pooled !== undefined) this.stdioCounts.pooled++;
      else this.stdioCounts.connectBack++;
    }
    const request = encodeSpawnerRequest({
      id,
      flags:
        (spec.credentials !== undefined ? SpawnerFlag.CREDENTIALS : 0) |
        (output !== undefined ? SpawnerFlag.DETACHED : 0) |
        (pooled !== undefined ? SpawnerFlag.POOLED : 0) |
        (stdinNull ? SpawnerFlag.STDIN_NULL : 0),
      ...(pooled !== undefined ? { slots: pooled.slots } : {}),
      uid: spec.credentials?.uid ?? 0,
      gid: spec.credentials?.gid ?? 0,
      path: spec.path,
      cwd: spec.cwd,
      output: output ?? "",
      argv: spec.argv,
      env,
    });
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        spec,
        detached: output !== undefined,
        stdinNull,
        pid: undefined,
        stdio: pooled?.sockets ?? [],
        exitStatus: undefined,
        resolve,
        reject,
      });
      proc.stdin!.write(request);
    });
  }

  /** Three idle pooled connections (oldest first), taken out of the pool; undefined if fewer. */
  private takePooled(): { slots: [number, number, number]; sockets: Socket[] } | undefined {
    if (this.pool.size < 3) return undefined;
    const slots: number[] = [];
    const sockets: Socket[] = [];
    for (const [slot, socket] of this.pool) {
      slots.push(slot);
      sockets.push(socket);
      if (slots.length === 3) break;
    }
    for (const slot of slots) this.pool.delete(slot);
    // Paused again before the request goes out: the command's output waits for its reader.
    for (const socket of sockets) socket.pause();
    return { slots: slots as [number, number, number], sockets };
  }

  private dropPool(): void {
    for (const socket of this.pool.values()) socket.destroy();
    this.pool.clear();
  }

  /** Stops the spawner (its running commands are left alone) and removes its socket. */
  close(): void {
    this.closed = true;
    this.dropPool();
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.proc?.kill("SIGKILL");
    this.server?.close();
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }

  private listen(then: () => void): void {
    mkdirSync(this.runtimeParent, { recursive: true, mode: 0o755 });
    const dir = mkdtempSync(join(this.runtimeParent, "spawner-"));
    chmodSync(dir, 0o700);
    this.dir = dir;
    const server = createServer((socket) => this.onStdioConnection(socket));
    server.on("error", (err) => {
      this.log.warn("spawner stdio socket failed", { error: err.message });
      if (this.listening) {
        this.listening = false;
        this.server = undefined;
        rmSync(dir, { recursive: true, force: true });
        this.onGone(undefined, err);
      }
    });
    server.listen(join(dir, "stdio.sock"), () => {
      // The directory (0700, root's) already keeps everyone else out; the socket too.
      chmodSync(join(dir, "stdio.sock"), 0o600);
      then();
    });
    this.server = server;
  }

  private onStdioConnection(socket: Socket): void {
    socket.on("error", () => socket.destroy());
    let header: Buffer | undefined;
    const onReadable = () => {
      if (header === undefined) {
        header = (socket.read(STDIO_HEADER_BYTES) as Buffer | null) ?? undefined;
        if (header === undefined) return;
      }
      const id = header.readUInt32LE(0);
      const stream = header.readUInt32LE(4);
      if (stream === STDIO_STREAM_POOLED) {
        const extra = socket.read(POOLED_HEADER_EXTRA_BYTES) as Buffer | null;
        if (extra === null) return;
        socket.off("readable", onReadable);
        this.onPooledConnection(socket, id, extra.readUInt32LE(0));
        return;
      }
      socket.off("readable", onReadable);
      const pending = this.pending.get(id);
      if (
        header.byteLength < STDIO_HEADER_BYTES ||
        pending === undefined ||
        stream > 2 ||
        (stream === 0 && pending.stdinNull)
      ) {
        // A start that failed meanwhile (its sockets are useless), or not ours.
        socket.destroy();
        return;
      }
      pending.stdio[stream] = socket;
      this.complete(id, pending);
    };
    socket.on("readable", onReadable);
  }

  /** A connection the spawner made ahead of time: held (paused, unread) until a request names it. */
  private onPooledConnection(socket: Socket, slot: number, generation: number): void {
    if (generation !== this.generation || this.proc === undefined || this.pool.has(slot)) {
      // An earlier spawner's (it died; its commands connect back no more), or not ours.
      socket.destroy();
      return;
    }
    this.pool.set(slot, socket);
    // Flowing while idle (nothing arrives but EOF): a paused socket would never see its end.
    socket.resume();
    // The spawner closed it (it exited) or it broke: no longer usable.
    socket.once("close", () => {
      if (this.pool.get(slot) === socket) this.pool.delete(slot);
    });
  }

  private onReply(reply: SpawnerReply): void {
    if (reply.type === SpawnerReplyType.READY) {
      this.ready = true;
      this.failedStarts = 0;
      this.pid = reply.pid;
      this.log.info("spawner ready", { pid: reply.pid });
      return;
    }
    if (reply.type === SpawnerReplyType.EXITED) {
      const command = this.running.get(reply.id);
      if (command !== undefined) {
        this.running.delete(reply.id);
        if (command instanceof SpawnedCommand) command.exited(reply.value);
        else this.log.info("detached exec done", { pid: command.detachedPid, status: reply.value });
        return;
      }
      const pending = this.pending.get(reply.id);
      if (pending !== undefined) pending.exitStatus = reply.value;
      return;
    }
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    if (reply.type === SpawnerReplyType.STARTED) {
      pending.pid = reply.pid;
      this.complete(reply.id, pending);
    } else if (reply.type === SpawnerReplyType.FAILED) {
      this.dropPending(reply.id, pending);
      pending.reject(spawnError(reply.value, pending.spec.path));
    } else if (reply.type === SpawnerReplyType.BROKEN) {
      // Nothing started: Node's spawn takes this one; a fresh spawner and socket for the next.
      this.dropPending(reply.id, pending);
      this.log.warn("spawner could not start a command; restarting it", {
        errno: errnoNames.get(reply.value) ?? reply.value,
      });
      pending.resolve(undefined);
      this.restartWithNewSocket();
    }
  }

  /** A start is complete once its pid and (unless detached) its three stdio sockets are here. */
  private complete(id: number, pending: PendingStart): void {
    if (pending.pid === undefined) return;
    const streams = pending.stdinNull ? [1, 2] : [0, 1, 2];
    if (!pending.detached && streams.some((i) => pending.stdio[i] === undefined)) return;
    this.pending.delete(id);
    if (pending.detached) {
      if (pending.exitStatus === undefined) this.running.set(id, { detachedPid: pending.pid });
      pending.resolve(new SpawnedCommand(pending.pid, null, null, null));
      return;
    }
    const command = new SpawnedCommand(
      pending.pid,
      pending.stdio[0] ?? null,
      pending.stdio[1]!,
      pending.stdio[2]!,
    );
    if (pending.exitStatus !== undefined) {
      command.exited(pending.exitStatus);
    } else {
      this.running.set(id, command);
    }
    pending.resolve(command);
  }

  private dropPending(id: number, pending: PendingStart): void {
    this.pending.delete(id);
    for (const socket of pending.stdio) socket?.destroy();
  }

  private onGone(proc: ChildProcess | undefined, err: Error | undefined): void {
    if (proc !== undefined && this.proc !== proc) return;
    const wasReady = this.ready;
    this.proc = undefined;
    this.dropPool();
    this.ready = false;
    this.pid = undefined;
    if (!wasReady) this.failedStarts++;
    if (!this.closed) {
      this.log.warn("spawner exited", {
        ...(err !== undefined ? { error: err.message } : {}),
        exit_code: proc?.exitCode,
        signal: proc?.signalCode,
      });
    }
    proc?.kill("SIGKILL");
    // Started commands run on (reparented to PID 1); their exit status is lost.
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      if (pending.pid !== undefined && pending.detached) {
        pending.resolve(new SpawnedCommand(pending.pid, null, null, null));
        continue;
      }
      // Its stdio sockets will never all be matched now: nobody can serve it.
      for (const socket of pending.stdio) socket?.destroy();
      if (pending.pid !== undefined) {
        try {
          process.kill(-pending.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      pending.reject(new SpawnerLostError(SPAWNER_LOST_TEXT));
    }
    for (const [id, command] of this.running) {
      this.running.delete(id);
      if (command instanceof SpawnedCommand) command.spawnerLost();
    }
    if (!this.closed) this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.closed || this.restartTimer !== undefined) return;
    if (this.failedStarts >= MAX_FAILED_STARTS) {
      if (this.failedStarts === MAX_FAILED_STARTS) {
        this.failedStarts++;
        this.log.warn("spawner keeps failing to start; commands use Node's spawn from now on");
      }
      return;
    }
    const wait = Math.max(0, this.lastStart + RESTART_BACKOFF_MS - Date.now());
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.start();
    }, wait);
    this.restartTimer.unref();
  }

  private restartWithNewSocket(): void {
    const proc = this.proc;
    this.server?.close();
    this.server = undefined;
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
    // Its "exit" runs onGone, which schedules the restart (and listen() makes a new socket).
    proc?.kill("SIGKILL");
  }
}
