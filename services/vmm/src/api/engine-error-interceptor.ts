import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import { isEngineError } from "../engine/engine-error.js";
import { toConnectError } from "./proto-mapping.js";

/**
 * Maps engine errors to Connect errors with the matching code, once for every VmmService call
 * (unary and streaming). Other errors pass on to the request-context interceptor, which turns
 * anything that is not a ConnectError into Internal without detail.
 */
export const engineErrorInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    if (!res.stream) return res;
    return { ...res, message: mappedStream(res) } as typeof res;
  } catch (e) {
    throw mapped(e);
  }
};

function mapped(e: unknown): unknown {
  return isEngineError(e) ? toConnectError(e) : e;
}

async function* mappedStream(res: StreamResponse): AsyncIterable<unknown> {
  try {
    yield* res.message;
  } catch (e) {
    throw mapped(e);
  }
}
