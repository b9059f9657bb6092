import * as http from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type UniversalClientFn,
  type UniversalClientRequest,
  type UniversalClientResponse,
  getAbortSignalReason,
} from "@connectrpc/connect/protocol";

/**
 * Connect's HTTP client for a service on a Unix socket, over HTTP/1.1 keep-alive connections,
 * that sends each request in a single write. connect-node's own HTTP/1.1 client flushes the
 * headers, then writes the body chunked and then its terminator: three writes, and on a loaded
 * machine the service wakes up for each. Every request our services send has a finite body (one
 * message: unary and server-streaming calls only), so it is read whole and sent with a
 * content-length, headers and body in one write, which the service reads in one wake-up.
 */
export function createUnixHttp1Client(agent: http.Agent, socketPath: string): UniversalClientFn {
  return async (req) => {
    const body = await readAll(req.body);
    const { signal } = req;
    if (signal?.aborted) throw ConnectError.from(getAbortSignalReason(signal), Code.Canceled);
    const url = new URL(req.url);
    const headers: http.OutgoingHttpHeaders = {};
    req.header.forEach((value, key) => {
      headers[key] = value;
    });
    headers["content-length"] = body.byteLength;
    return new Promise<UniversalClientResponse>((resolve, reject) => {
      const request = http.request({
        agent,
        socketPath,
        method: req.method,
        path: url.pathname + url.search,
        headers,
      });
      // Until the response is read to its end: the caller's abort or deadline cuts the call. Not
      // after: the call's signal is also aborted when it completes, and the connection is reused.
      const onAbort = () =>
        request.destroy(ConnectError.from(signal ? getAbortSignalReason(signal) : undefined, Code.Canceled));
      signal?.addEventListener("abort", onAbort);
      const stopWatchingAbort = () => signal?.removeEventListener("abort", onAbort);
      // `on`, not `once`: a second error (e.g. the connection reset after an abort) must not go unhandled.
      request.on("error", (e) => {
        stopWatchingAbort();
        reject(connectErrorFromSocket(e));
      });
      request.once("response", (res) => {
        // Seen by the body's iterator; this listener only keeps an unread response's error from crashing us.
        res.on("error", () => {});
        const header = new Headers();
        appendNodeHeaders(header, res.headers);
        const trailer = new Headers();
        resolve({
          status: res.statusCode ?? 0,
          header,
          trailer,
          body: (async function* () {
            try {
              for await (const chunk of res) yield chunk as Uint8Array;
              appendNodeHeaders(trailer, res.trailers);
            } catch (e) {
              throw connectErrorFromSocket(e);
            } finally {
              stopWatchingAbort();
            }
          })(),
        });
      });
      request.end(body);
    });
  };
}

async function readAll(body: UniversalClientRequest["body"]): Promise<Uint8Array> {
  if (body === undefined) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks);
}

function appendNodeHeaders(target: Headers, source: http.IncomingHttpHeaders | NodeJS.Dict<string>): void {
  for (const [key, value] of Object.entries(source)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) target.append(key, v);
    else target.set(key, value);
  }
}

/**
 * A failure of the connection itself (refused, reset, closed mid-response) is Unavailable: the
 * service is down or went away, so the caller may retry later (503). The Node error stays the
 * cause, so connect-client.ts can tell a socket error (ServiceUnreachableError) from an answer.
 * connect-node's own client calls some of these Aborted or Internal, which callers would take
 * for an answer of the service.
 */
function connectErrorFromSocket(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  const reason = e instanceof Error ? e.message : String(e);
  return new ConnectError(
    `connection to the service failed: ${reason}`,
    Code.Unavailable,
    undefined,
    undefined,
    e,
  );
}
