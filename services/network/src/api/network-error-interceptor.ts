import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { InvalidPolicyError } from "../domain/egress-policy.js";
import { NetworkError, type NetworkErrorCode } from "../domain/network-error.js";

const codes: Record<NetworkErrorCode, Code> = {
  "not-found": Code.NotFound,
  "failed-precondition": Code.FailedPrecondition,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/** The Connect error a network operation's failure is reported as. */
export function toConnectError(e: unknown): unknown {
  if (e instanceof NetworkError) return new ConnectError(e.message, codes[e.code], undefined, undefined, e);
  if (e instanceof InvalidPolicyError)
    return new ConnectError(e.message, Code.InvalidArgument, undefined, undefined, e);
  // ConnectErrors (validation, the store's answers) pass as they are; anything else becomes
  // Internal without its detail in the request context interceptor.
  return e;
}

/** The one place the network service maps its errors to Connect codes. */
export const networkErrorInterceptor: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (e) {
    throw toConnectError(e);
  }
};
