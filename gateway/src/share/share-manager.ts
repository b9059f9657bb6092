import { randomBytes } from "node:crypto";
import type { AgentClient, SessionConnection } from "@bhatti/agent-client";
import { type ShareRecord, ShareStoreService } from "@bhatti/proto";
import { type Logger, type ServerConfig, createServiceClient, serviceSocketPath } from "@bhatti/runtime";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { WebSocket } from "ws";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import { createIpRateLimiter } from "../limits/ip-rate-limiter.js";
import { translatingAgentErrors } from "../sandboxes/agent-errors.js";
import type { InteractiveSandbox } from "../sandboxes/session-operations.js";
import type { SandboxRuntime } from "../sandbox-runtime.js";
import type { ServiceClients } from "../service-clients.js";
import { watchVmmEvents } from "../wake/vmm-event-watch.js";
import { createSessionHubs } from "./session-hub.js";
import { type ShareClaims, signShareToken, verifyShareToken } from "./share-token.js";

/** A share as the API shows it; `token` and `url` only when it was just created. */
export interface ShareView {
  readonly id: string;
  readonly sandboxId: string;
  readonly sessionId: string;
  readonly readOnly: boolean;
  readonly expiresAt: Date;
  readonly createdAt: Date;
  readonly token?: string;
  /** Path of the page (`/share/<token>`); the surfaces prefix the base URL. */
  readonly path?: string;
}

export interface CreateShareInput {
  /** Lifetime; 0 or undefined: DEFAULT_SHARE_SEC. */
  expiresSec?: number | undefined;
  readOnly: boolean;
  /** Share this TTY session instead of opening a new one. */
  sessionId?: string | undefined;
}

/** A verified link: its claims and the sandbox's owner. */
export interface AuthorizedShare {
  readonly claims: ShareClaims;
  readonly userId: string;
}

/** Something live under a share (a viewer's WebSocket), ended when the share is revoked. */
export interface ShareViewer {
  readonly sandboxId: string;
  end(reason: string): void;
}

/**
 * Share links: a signed, expiring, revocable URL to a web terminal attached to one TTY session
 * of a sandbox. The link is an HMAC-SHA256 token (the store's key, `<state_dir>/share.key`) carrying the
 * share id, sandbox, session, read-only flag and expiry; the store keeps every share's record so
 * a revoke holds across gateway restarts. A token grants that session's page and WebSocket and
 * nothing else: it is not an API key, so every other route refuses it.
 */
export interface ShareManager {
  create(user: AuthenticatedUser, ref: string, input: CreateShareInput): Promise<ShareView>;
  list(user: AuthenticatedUser, ref: string): Promise<ShareView[]>;
  /** Revokes one share or all of the sandbox's, and ends their live viewers. */
  revoke(user: AuthenticatedUser, ref: string, shareId: string | undefined): Promise<string[]>;
  /** Checks signature, expiry and revocation (Unauthenticated with a clear message otherwise). */
  authorize(token: string): Promise<AuthorizedShare>;
  /** The shared session, to attach a viewer's socket to (wakes the sandbox on open). */
  sandboxFor(share: AuthorizedShare): InteractiveSandbox;
  /** Serves a viewer's socket on the share's session, with the session's other viewers. */
  join(ws: WebSocket, share: AuthorizedShare): void;
  /** Per-client-address limit of page loads and socket opens (429 with Retry-After past it). */
  limitAddress(remoteAddr: string): void;
  /** Registers a live viewer; returns its unregister function. */
  track(shareId: string, viewer: ShareViewer): () => void;
  close(): void;
}

export const DEFAULT_SHARE_SEC = 3_600;
export const MAX_SHARE_SEC = 30 * 86_400;
const SHELL_ENV = { TERM: "xterm-256color" };

const viewOf = (r: ShareRecord): ShareView => ({
  id: r.id,
  sandboxId: r.sandboxId,
  sessionId: r.sessionId,
  readOnly: r.readOnly,
  expiresAt: r.expiresAt === undefined ? new Date(0) : timestampDate(r.expiresAt),
  createdAt: r.createdAt === undefined ? new Date(0) : timestampDate(r.createdAt),
});

/** A new TTY shell that outlives its first (absent) client for as long as the link lives. */
async function openSharedShell(agent: AgentClient, expiresSec: number): Promise<SessionConnection> {
  const options = { env: SHELL_ENV, rows: 24, cols: 80, maxIdleSec: expiresSec, cwd: "/workspace" };
  try {
    return await agent.openTtySession(["/bin/bash", "-li"], options);
  } catch {
    // Images without bash (busybox) still get a shell.
    return agent.openTtySession(["/bin/sh", "-l"], { ...options, cwd: "/" });
  }
}

export function createShareManager(deps: {
  config: ServerConfig;
  runtime: SandboxRuntime;
  clients: ServiceClients;
  logger: Logger;
  /** Tests inject a client; by default the store's socket is dialed on first use. */
  shareStore?: Client<typeof ShareStoreService>;
}): ShareManager {
  const { config, runtime, logger } = deps;
  const { wake, sandboxes } = runtime;
  // The key is the store's (it owns the state dir), fetched on first use and kept.
  let key: Promise<Buffer> | undefined;
  const secret = (): Promise<Buffer> => {
    key ??= store()
      .getShareKey({})
      .then(
        (res) => {
          if (res.key.length < 32) throw new ConnectError("store returned no share key", Code.Internal);
          return Buffer.from(res.key);
        },
        (e: unknown) => {
          key = undefined;
          throw e;
        },
      );
    return key;
  };
  let dialed: ReturnType<typeof createServiceClient<typeof ShareStoreService>> | undefined;
  const store = (): Client<typeof ShareStoreService> => {
    if (deps.shareStore !== undefined) return deps.shareStore;
    dialed ??= createServiceClient(ShareStoreService, serviceSocketPath(config.socket_dir, "store"), {
      defaultTimeoutMs: config.rpc_timeout,
    });
    return dialed.client;
  };
  const viewers = new Map<string, Set<ShareViewer>>();
  const hubs = createSessionHubs({ wake, clients: deps.clients, logger });
  // A destroyed sandbox's viewers are told at once: their agent connection may never see a FIN
  // (the sandbox's network goes away with it).
  const stopWatching = watchVmmEvents(deps.clients, logger, {
    onLive() {},
    onCooled() {},
    onDestroyed(sandboxId) {
      for (const set of viewers.values()) {
        for (const v of set) if (v.sandboxId === sandboxId) v.end("sandbox destroyed");
      }
    },
  });
  const perAddress = createIpRateLimiter({
    capacity: config.rate_share_per_minute,
    perMinute: config.rate_share_per_minute,
  });

  const sandboxFor = (share: AuthorizedShare): InteractiveSandbox => {
    const { sandboxId, sessionId } = share.claims;
    const onAgent = <T>(op: (agent: AgentClient) => Promise<T>): Promise<T> =>
      translatingAgentErrors(async () => op(await wake.ensureHot(sandboxId)));
    const refuse = () =>
      Promise.reject(new ConnectError("a share grants its session only", Code.PermissionDenied));
    return {
      sandboxId,
      // Always the shared session, whatever the viewer asks for.
      openShell: () =>
        onAgent(async (agent) => ({ session: await agent.attachSession(sessionId), reattach: true })),
      openPiped: refuse,
      attach: refuse,
    };
  };

  return {
    async create(user, ref, input) {
      const expiresSec =
        input.expiresSec === undefined || input.expiresSec === 0 ? DEFAULT_SHARE_SEC : input.expiresSec;
      if (!Number.isInteger(expiresSec) || expiresSec < 1 || expiresSec > MAX_SHARE_SEC) {
        throw new ConnectError(
          `expiry must be between 1 s and ${MAX_SHARE_SEC / 86_400} days`,
          Code.InvalidArgument,
        );
      }
      const sandboxId = await sandboxes.resolveId(user, ref);
      const wanted = input.sessionId ?? "";
      const sessionId = await translatingAgentErrors(() =>
        wake.withAgent(sandboxId, async (agent) => {
          if (wanted !== "") {
            const found = (await agent.listSessions()).find((s) => s.session_id === wanted);
            if (found === undefined || !found.tty || !found.running) {
              throw new ConnectError(`no running TTY session ${wanted}`, Code.NotFound);
            }
            return wanted;
          }
          const session = await openSharedShell(agent, expiresSec);
          // Left running, detached: the first viewer attaches and sees its prompt in the scrollback.
          session.detach();
          return session.sessionId;
        }),
      );
      const id = `shr_${randomBytes(12).toString("hex")}`;
      const expiresAtSec = Math.floor(Date.now() / 1000) + expiresSec;
      const { share } = await store().recordShare({
        id,
        userId: user.id,
        sandbox: sandboxId,
        sessionId,
        readOnly: input.readOnly,
        expiresAt: timestampFromMs(expiresAtSec * 1000),
      });
      if (share === undefined) throw new ConnectError("store returned no share", Code.Internal);
      const token = signShareToken(await secret(), {
        id,
        sandboxId,
        sessionId,
        readOnly: input.readOnly,
        expiresAt: expiresAtSec,
      });
      logger.info("share created", {
        share_id: id,
        sandbox_id: sandboxId,
        session_id: sessionId,
        read_only: input.readOnly,
      });
      return { ...viewOf(share), token, path: `/share/${token}` };
    },
    async list(user, ref) {
      const sandboxId = await sandboxes.resolveId(user, ref);
      const { shares } = await store().listShares({ userId: user.id, sandbox: sandboxId });
      return shares.map(viewOf);
    },
    async revoke(user, ref, shareId) {
      const sandboxId = await sandboxes.resolveId(user, ref);
      const { shareIds } = await store().revokeShares({
        userId: user.id,
        sandbox: sandboxId,
        shareId: shareId ?? "",
      });
      for (const id of shareIds) {
        for (const v of viewers.get(id) ?? []) v.end("share revoked");
        viewers.delete(id);
      }
      return shareIds;
    },
    async authorize(token) {
      const claims = verifyShareToken(await secret(), token, Math.floor(Date.now() / 1000));
      let record: ShareRecord | undefined;
      try {
        record = (await store().getShare({ id: claims.id })).share;
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code !== Code.NotFound) throw err;
      }
      // A signed token without its record (a restored older database) is not honoured.
      if (
        record === undefined ||
        record.sandboxId !== claims.sandboxId ||
        record.sessionId !== claims.sessionId
      ) {
        throw new ConnectError("share link is invalid", Code.Unauthenticated);
      }
      if (record.revokedAt !== undefined)
        throw new ConnectError("share link was revoked", Code.Unauthenticated);
      // A destroyed sandbox ends its links for good (a page would otherwise retry for ever).
      try {
        await deps.clients.store.getSandbox({ anyUser: true, sandbox: claims.sandboxId });
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.NotFound) {
          throw new ConnectError(
            "share link is no longer valid: its sandbox was destroyed",
            Code.Unauthenticated,
          );
        }
        throw err;
      }
      return { claims, userId: record.userId };
    },
    sandboxFor,
    join(ws, share) {
      hubs.join(ws, {
        sandbox: sandboxFor(share),
        sessionId: share.claims.sessionId,
        userId: share.userId,
        readOnly: share.claims.readOnly,
      });
    },
    limitAddress: (remoteAddr) => perAddress.take(remoteAddr),
    track(shareId, viewer) {
      const set = viewers.get(shareId) ?? new Set<ShareViewer>();
      set.add(viewer);
      viewers.set(shareId, set);
      return () => {
        set.delete(viewer);
        if (set.size === 0 && viewers.get(shareId) === set) viewers.delete(shareId);
      };
    },
    close() {
      stopWatching();
      dialed?.close();
      dialed = undefined;
    },
  };
}
