import { type FileInfo, FileInfoSchema, SandboxService, SessionInfoSchema } from "@bhatti/proto";
import type { FileInfo as AgentFileInfo, SessionInfo as AgentSessionInfo } from "@bhatti/agent-protocol";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { AgentLimits } from "@bhatti/agent-protocol";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { GatewayContext } from "../gateway-context.js";
import type { RateClass } from "../limits/rate-limiter.js";
import { translatingAgentErrors } from "../sandboxes/agent-errors.js";
import { checkCreateInput, checkSandboxName, parseFileMode } from "../sandboxes/create-input.js";
import { effectiveExecTimeoutSec } from "../sandboxes/exec-timeout.js";
import { startExec } from "../sandboxes/sandbox-exec.js";
import { sandboxMessage } from "../sandboxes/sandbox-view.js";
import { callerOf } from "./auth-interceptor.js";

const MAX_EXEC_STDIN = 16 * 1024 * 1024;
const READ_CHUNK = 256 * 1024;

function fileInfoMessage(f: AgentFileInfo): FileInfo {
  return create(FileInfoSchema, {
    name: f.name,
    size: BigInt(f.size),
    mode: f.mode,
    isDir: f.is_dir,
    modifiedAt: timestampFromMs(f.mtime * 1000),
  });
}

function sessionInfoMessage(s: AgentSessionInfo) {
  return create(SessionInfoSchema, {
    sessionId: s.session_id,
    command: s.argv,
    tty: s.tty,
    running: s.running,
    attached: s.attached,
    ...(s.exit_code !== undefined ? { exitCode: s.exit_code } : {}),
    createdAt: timestampFromMs(s.created_at * 1000),
  });
}

/** The public SandboxService: the same operations as the REST routes, for the CLI. */
export function registerSandboxService(router: ConnectRouter, gw: GatewayContext): void {
  const { sandboxes, wake, limiter } = gw.runtime;
  const caller = (ctx: HandlerContext, cls: RateClass): AuthenticatedUser => {
    const user = callerOf(ctx);
    limiter.take(user.record, cls);
    return user;
  };

  router.service(SandboxService, {
    async createSandbox(req, ctx) {
      const user = caller(ctx, "create");
      const input = checkCreateInput({
        name: req.name,
        image: req.image,
        cpus: req.cpus,
        memoryMb: req.memoryMb,
        diskSizeMb: req.diskSizeMb,
        env: req.env,
        secrets: req.secrets,
        files: req.files.map((f) => ({
          guestPath: f.guestPath,
          content: f.content,
          mode: parseFileMode(f.mode),
        })),
        labels: req.labels,
        keepHot: req.keepHot,
        init: req.init,
      });
      const { state, existing } = await sandboxes.create(user, input);
      return { sandbox: sandboxMessage(state), existing };
    },

    async listSandboxes(req, ctx) {
      const user = caller(ctx, "read");
      return { sandboxes: (await sandboxes.list(user, req.labels)).map(sandboxMessage) };
    },

    async getSandbox(req, ctx) {
      const user = caller(ctx, "read");
      return { sandbox: sandboxMessage(await sandboxes.get(user, req.sandbox)) };
    },

    async updateSandbox(req, ctx) {
      const user = caller(ctx, "read");
      // keep_hot wakes or releases a sandbox: a lifecycle operation, unlike a rename or labels.
      if (req.keepHot !== undefined) limiter.take(user.record, "lifecycle");
      if (req.name !== undefined && req.name !== "") checkSandboxName(req.name);
      const state = await sandboxes.update(user, req.sandbox, {
        ...(req.keepHot !== undefined ? { keepHot: req.keepHot } : {}),
        ...(req.name !== undefined && req.name !== "" ? { name: req.name } : {}),
        labelsAdd: req.labelsAdd,
        labelsRemove: req.labelsRemove,
      });
      return { sandbox: sandboxMessage(state) };
    },

    async deleteSandbox(req, ctx) {
      const user = caller(ctx, "lifecycle");
      await sandboxes.destroy(user, req.sandbox);
      return {};
    },

    async stopSandbox(req, ctx) {
      const user = caller(ctx, "lifecycle");
      return { sandbox: sandboxMessage(await sandboxes.stop(user, req.sandbox)) };
    },

    async startSandbox(req, ctx) {
      const user = caller(ctx, "lifecycle");
      return { sandbox: sandboxMessage(await sandboxes.start(user, req.sandbox, req.force)) };
    },

    async *exec(req, ctx) {
      const user = caller(ctx, "exec");
      if (req.cmd.length === 0) throw new ConnectError("cmd required", Code.InvalidArgument);
      if (req.stdin.byteLength > MAX_EXEC_STDIN) {
        throw new ConnectError(`stdin larger than ${MAX_EXEC_STDIN} bytes`, Code.InvalidArgument);
      }
      const id = await sandboxes.resolveId(user, req.sandbox);
      if (req.detach) {
        const started = await translatingAgentErrors(() =>
          wake.withAgent(
            id,
            (agent) =>
              agent.execDetached(req.cmd, {
                env: req.env,
                ...(req.cwd !== "" ? { cwd: req.cwd } : {}),
                ...(req.outputFile !== "" ? { outputFile: req.outputFile } : {}),
                signal: ctx.signal,
              }),
            { signal: ctx.signal },
          ),
        );
        yield { event: { case: "detached", value: { pid: started.pid, outputFile: started.outputFile } } };
        return;
      }
      const events = await startExec(wake, id, {
        cmd: req.cmd,
        timeoutSec: effectiveExecTimeoutSec(req.timeoutSec),
        env: req.env,
        cwd: req.cwd,
        stdin: req.stdin,
        signal: ctx.signal,
      });
      const stop = () => void events.return(undefined).catch(() => undefined);
      ctx.signal.addEventListener("abort", stop, { once: true });
      // Revoking the key ends the stream with Unauthenticated, even while the command is quiet.
      let revoke: (reason: string) => void = () => undefined;
      const revoked = new Promise<never>((_, reject) => {
        revoke = (reason) => reject(new ConnectError(reason, Code.Unauthenticated));
      });
      revoked.catch(() => undefined);
      const untrack = gw.auth.sessions.register(user, { end: (reason) => revoke(reason) });
      try {
        for (;;) {
          const next = await Promise.race([events.next(), revoked]);
          if (next.done === true) break;
          const ev = next.value;
          if (ev.type === "exit") yield { event: { case: "exitCode", value: ev.exitCode } };
          else yield { event: { case: ev.type, value: ev.data } };
        }
      } finally {
        untrack();
        ctx.signal.removeEventListener("abort", stop);
        stop();
      }
    },

    async listSessions(req, ctx) {
      const user = caller(ctx, "read");
      const id = await sandboxes.resolveId(user, req.sandbox);
      const sessions = await translatingAgentErrors(() =>
        wake.withAgent(id, (a) => a.listSessions({ signal: ctx.signal }), { signal: ctx.signal }),
      );
      return { sessions: sessions.map(sessionInfoMessage) };
    },

    async *readFile(req, ctx) {
      const user = caller(ctx, "read");
      if (req.path === "") throw new ConnectError("path required", Code.InvalidArgument);
      const id = await sandboxes.resolveId(user, req.sandbox);
      const file = await translatingAgentErrors(() =>
        wake.withAgent(
          id,
          (a) =>
            a.readFile(req.path, {
              offset: req.offset,
              limit: req.limit,
              maxBytes: Number(req.maxBytes),
              signal: ctx.signal,
            }),
          { signal: ctx.signal },
        ),
      );
      yield { size: BigInt(file.size), mode: file.mode };
      for await (const chunk of file.content) {
        for (let off = 0; off < chunk.byteLength; off += READ_CHUNK) {
          yield { data: chunk.subarray(off, off + READ_CHUNK) };
        }
      }
    },

    async writeFile(req, ctx) {
      const user = caller(ctx, "exec");
      if (req.path === "") throw new ConnectError("path required", Code.InvalidArgument);
      if (req.content.byteLength > AgentLimits.maxWriteBytes) {
        throw new ConnectError(
          `file too large: ${req.content.byteLength} bytes (max ${AgentLimits.maxWriteBytes})`,
          Code.InvalidArgument,
        );
      }
      const mode = parseFileMode(req.mode).toString(8).padStart(4, "0");
      const id = await sandboxes.resolveId(user, req.sandbox);
      await translatingAgentErrors(() =>
        wake.withAgent(id, (a) => a.writeFile(req.path, req.content, { mode, signal: ctx.signal }), {
          signal: ctx.signal,
        }),
      );
      return {};
    },

    async listFiles(req, ctx) {
      const user = caller(ctx, "read");
      if (req.path === "") throw new ConnectError("path required", Code.InvalidArgument);
      const id = await sandboxes.resolveId(user, req.sandbox);
      const entries = await translatingAgentErrors(() =>
        wake.withAgent(id, (a) => a.listDir(req.path, { signal: ctx.signal }), { signal: ctx.signal }),
      );
      return { files: entries.map(fileInfoMessage) };
    },

    async statFile(req, ctx) {
      const user = caller(ctx, "read");
      if (req.path === "") throw new ConnectError("path required", Code.InvalidArgument);
      const id = await sandboxes.resolveId(user, req.sandbox);
      const info = await translatingAgentErrors(() =>
        wake.withAgent(id, (a) => a.stat(req.path, { signal: ctx.signal }), { signal: ctx.signal }),
      );
      return { file: fileInfoMessage(info) };
    },

    async listImages(_req, ctx) {
      caller(ctx, "read");
      const { images } = await gw.clients.vmm.listImages({});
      return {
        images: images.map((i) => ({
          name: i.name,
          description: i.description,
          sizeBytes: i.sizeBytes,
          builtAt: i.builtAt,
          isDefault: i.isDefault,
        })),
      };
    },
  });
}
