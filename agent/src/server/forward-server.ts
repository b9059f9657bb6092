import { connect, createServer, type Server, type Socket } from "node:net";
import {
  FrameReader,
  FrameType,
  errorTextFor,
  formatTypeByte,
  type ForwardResponse,
} from "@bhatti/agent-protocol";
import type { AgentContext } from "../agent-context.js";
import { describeJsonError, parseJsonObject } from "../files/request-json.js";
import { authenticate } from "./authenticate.js";
import { FrameSink } from "./frame-sink.js";

/**
 * The forward port (1025): AUTH → FWD_REQ{port} → the agent dials 127.0.0.1:port → FWD_RESP;
 * after "ok" the connection is a raw byte relay, and an EOF from either side is passed on
 * as a half-close so request/response protocols keep working.
 */
export function createForwardServer(ctx: AgentContext): Server {
  return createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    socket.on("error", () => {
      // Handled by the relay.
    });
    serveForward(ctx, socket).catch((err: unknown) => {
      ctx.log.error("forward connection failed", { error: err as Error });
      socket.destroy();
    });
  });
}

async function serveForward(ctx: AgentContext, socket: Socket): Promise<void> {
  const reader = new FrameReader(socket);
  const sink = new FrameSink(socket);
  if (!(await authenticate(reader, sink, ctx.token, ctx.authTimeoutMs))) return;
  let frame: Awaited<ReturnType<typeof reader.read>>;
  try {
    frame = await reader.read();
  } catch (err) {
    return sink.fail((err as Error).message);
  }
  if (frame === null) return sink.end();
  if (frame.type !== FrameType.FWD_REQ)
    return sink.fail(errorTextFor.expectedForward(formatTypeByte(frame.type)));

  let port: number;
  try {
    const raw = parseJsonObject(frame.payload)["port"];
    if (typeof raw !== "number" || !Number.isInteger(raw) || raw < 1 || raw > 65535) {
      throw new RangeError("port must be an integer in 1..65535");
    }
    port = raw;
  } catch (err) {
    return respond(sink, { status: "error", message: errorTextFor.badRequest(describeJsonError(err)) });
  }

  const target = connect({ host: "127.0.0.1", port, allowHalfOpen: true, noDelay: true });
  const connected = await new Promise<true | Error>((resolve) => {
    target.once("connect", () => resolve(true));
    target.once("error", resolve);
  });
  if (connected !== true) {
    target.destroy();
    return respond(sink, { status: "error", message: dialErrorText(port, connected) });
  }
  sink.sendJson(FrameType.FWD_RESP, { status: "ok" } satisfies ForwardResponse);
  const early = reader.detach();
  if (early.byteLength > 0) target.write(early);
  relay(socket, target);
}

function respond(sink: FrameSink, response: ForwardResponse): void {
  sink.sendJson(FrameType.FWD_RESP, response);
  sink.end();
}

function relay(host: Socket, target: Socket): void {
  const teardown = () => {
    host.destroy();
    target.destroy();
  };
  host.on("error", teardown);
  target.on("error", teardown);
  // pipe() ends the destination when the source ends: the half-close passes through. Each
  // socket closes by itself once it has ended in both directions.
  host.pipe(target);
  target.pipe(host);
}

/** The error text v1 (Go's net.Dial) gave: "dial tcp 127.0.0.1:N: connect: connection refused". */
function dialErrorText(port: number, err: NodeJS.ErrnoException): string {
  const reason = err.code === "ECONNREFUSED" ? "connection refused" : err.message;
  return `dial tcp 127.0.0.1:${port}: connect: ${reason}`;
}
