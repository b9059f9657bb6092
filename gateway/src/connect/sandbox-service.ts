import { SandboxService } from "@bhatti/proto";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { GatewayContext } from "../gateway-context.js";
import type { RateClass } from "../limits/rate-limiter.js";
import { checkCreateInput, checkSandboxName, parseFileMode } from "../sandboxes/create-input.js";
import { fileInfoMessage, sessionInfoMessage } from "../sandboxes/agent-messages.js";
import { sandboxMessage } from "../sandboxes/sandbox-view.js";
import { callerOf } from "./auth-interceptor.js";

const READ_CHUNK = 256 * 1024;

/** The public SandboxService: the same operations as the REST routes, for the CLI. */
export function registerSandboxService(router: ConnectRouter, gw: GatewayContext): void {
  const { sandboxes, agent, limiter } = gw.runtime;
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
        volumes: req.volumes.map((v) => ({ name: v.name, mount: v.mount, readOnly: v.readOnly })),
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
      const command = { cmd: req.cmd, env: req.env, cwd: req.cwd, stdin: req.stdin };
      if (req.detach) {
        const started = await agent.execDetached(
          user,
          req.sandbox,
          { ...command, outputFile: req.outputFile },
          ctx.signal,
        );
        yield { event: { case: "detached", value: { pid: started.pid, outputFile: started.outputFile } } };
        return;
      }
      const events = await agent.exec(
        user,
        req.sandbox,
        { ...command, timeoutSec: req.timeoutSec },
        ctx.signal,
      );
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
      const sessions = await agent.listSessions(user, req.sandbox, ctx.signal);
      return { sessions: sessions.map(sessionInfoMessage) };
    },

    async *readFile(req, ctx) {
      const user = caller(ctx, "read");
      const file = await agent.readFile(
        user,
        req.sandbox,
        { path: req.path, offset: req.offset, limit: req.limit, maxBytes: Number(req.maxBytes) },
        ctx.signal,
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
      await agent.writeFile(
        user,
        req.sandbox,
        { path: req.path, mode: req.mode, content: { bytes: req.content } },
        ctx.signal,
      );
      return {};
    },

    async listFiles(req, ctx) {
      const user = caller(ctx, "read");
      const entries = await agent.listDir(user, req.sandbox, req.path, ctx.signal);
      return { files: entries.map(fileInfoMessage) };
    },

    async statFile(req, ctx) {
      const user = caller(ctx, "read");
      return { file: fileInfoMessage(await agent.stat(user, req.sandbox, req.path, ctx.signal)) };
    },

    async listImages(_req, ctx) {
      const user = caller(ctx, "read");
      const { images } = await gw.clients.vmm.listImages({ userId: user.id });
      return {
        images: images.map((i) => ({
          name: i.name,
          description: i.description,
          sizeBytes: i.sizeBytes,
          builtAt: i.builtAt,
          isDefault: i.isDefault,
          source: i.source,
        })),
      };
    },
  });
}
