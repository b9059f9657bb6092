import type { IncomingMessage, ServerResponse } from "node:http";
import { AgentLimits } from "@bhatti/agent-protocol";
import { SandboxService } from "@bhatti/proto";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { type ConnectNodeAdapterOptions, connectNodeAdapter } from "@connectrpc/connect-node";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import type { GatewayContext } from "../gateway-context.js";
import { drainRefusedBody } from "../unread-body.js";

/** Every unary Connect body except a file write: far more than any message needs. */
export const CONNECT_MAX_BODY_BYTES = 1 << 20;

/**
 * A WriteFile body: the largest file the agent accepts, base64 in the JSON codec (what the CLI
 * sends), plus room for the path and the envelope.
 */
export const CONNECT_MAX_FILE_WRITE_BODY_BYTES = Math.ceil(AgentLimits.maxWriteBytes / 3) * 4 + (1 << 20);

const fileWritePath = `/${SandboxService.typeName}/${SandboxService.method.writeFile.name}`;

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** A refusal written before the Connect adapter reads a byte of the body. */
class EarlyRefusal {
  constructor(
    readonly status: number,
    readonly error: ConnectError,
  ) {}
}

/** The Connect error JSON (`{"code","message"}`) that Connect clients read whatever the status. */
function sendConnectError(req: IncomingMessage, res: ServerResponse, refusal: EarlyRefusal): void {
  const body = JSON.stringify(errorToJson(refusal.error, undefined));
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  };
  // As the adapter does: error metadata (e.g. a rate limit's retry-after) become headers.
  refusal.error.metadata.forEach((value, key) => {
    headers[key] = value;
  });
  drainRefusedBody(req, res);
  res.writeHead(refusal.status, headers);
  res.end(body);
}

/** Header-only checks, in the order that costs the least: target, encoding, declared size. */
function checkHeaders(req: IncomingMessage, path: string): EarlyRefusal | undefined {
  // The adapter builds `new URL(path, "http://" + host)` synchronously: a missing or bad Host
  // would throw out of the request listener and end the process.
  const host = req.headers.host;
  let targetOk = host !== undefined && host !== "";
  if (targetOk) {
    try {
      new URL(path, `http://${host}`);
    } catch {
      targetOk = false;
    }
  }
  if (!targetOk) {
    return new EarlyRefusal(400, new ConnectError("bad Host header or request target", Code.InvalidArgument));
  }
  for (const name of ["content-encoding", "connect-content-encoding"]) {
    const encoding = req.headers[name];
    if (encoding !== undefined && encoding !== "identity") {
      return new EarlyRefusal(
        415,
        new ConnectError("compressed request bodies are not accepted", Code.Unimplemented),
      );
    }
  }
  const limit = path === fileWritePath ? CONNECT_MAX_FILE_WRITE_BODY_BYTES : CONNECT_MAX_BODY_BYTES;
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    return new EarlyRefusal(
      413,
      new ConnectError(`request body larger than ${limit} bytes`, Code.ResourceExhausted),
    );
  }
  return undefined;
}

/**
 * The Connect API's entry point, bounded before authentication and decompression: compression
 * is refused, the declared body size is checked, the Bearer key is resolved from the headers
 * alone (the store sees an attempt at most once, the interceptor then hits the key cache), and
 * only then does an adapter read the body, counting as it streams (`readMaxBytes`: 1 MiB for
 * every procedure, a separate adapter for WriteFile's larger bound).
 */
export function createBoundedConnectHandler(
  gw: GatewayContext,
  options: ConnectNodeAdapterOptions,
): NodeHandler {
  const procedurePaths = new Set<string>();
  const common: ConnectNodeAdapterOptions = {
    ...options,
    acceptCompression: [],
    routes: (router: ConnectRouter) => {
      options.routes(router);
      for (const handler of router.handlers) procedurePaths.add(handler.requestPath);
    },
  };
  const unary = connectNodeAdapter({ ...common, readMaxBytes: CONNECT_MAX_BODY_BYTES });
  const fileWrite = connectNodeAdapter({ ...common, readMaxBytes: CONNECT_MAX_FILE_WRITE_BODY_BYTES });

  const dispatch = (req: IncomingMessage, res: ServerResponse, path: string) => {
    try {
      (path === fileWritePath ? fileWrite : unary)(req, res);
    } catch (e) {
      gw.logger.error("connect handler threw", { error: e });
      if (!res.headersSent) {
        sendConnectError(req, res, new EarlyRefusal(500, new ConnectError("internal error", Code.Internal)));
      } else res.destroy();
    }
  };

  const guarded = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    const refusal = checkHeaders(req, path);
    if (refusal !== undefined) {
      sendConnectError(req, res, refusal);
      return;
    }
    const procedure = path.slice(1);
    if (!gw.publicProcedures.has(procedure)) {
      try {
        await gw.auth.authenticate(req.headers.authorization, {
          remoteAddr: req.socket.remoteAddress ?? "",
          path,
        });
      } catch (e) {
        const err = ConnectError.from(e);
        const internal = err.code === Code.Internal || err.code === Code.Unknown;
        if (internal) gw.logger.error("authentication failed", { error: e });
        const status = err.code === Code.Unauthenticated ? 401 : codeToHttpStatus(err.code);
        // Like every 500 of the gateway: no internals in the answer, the detail is in the log.
        const shown = internal ? new ConnectError("internal error", Code.Internal) : err;
        sendConnectError(req, res, new EarlyRefusal(status, shown));
        return;
      }
    }
    dispatch(req, res, path);
  };

  return (req, res) => {
    const path = (req.url ?? "").split("?", 2)[0] ?? "";
    // Anything else is REST: the adapter hands it to the fallback without reading it.
    if (!procedurePaths.has(path)) {
      dispatch(req, res, path);
      return;
    }
    guarded(req, res, path).catch((e: unknown) => {
      gw.logger.error("connect request failed before the handler", { error: e });
      res.destroy();
    });
  };
}
