import { Code } from "@connectrpc/connect";

/**
 * The HTTP status a REST response carries for a Connect code. Conflicts (AlreadyExists,
 * FailedPrecondition, Aborted) are 409 and quota/rate limits 429, as in the v1 REST API.
 */
export function httpStatusOf(code: Code): number {
  switch (code) {
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return 400;
    case Code.Unauthenticated:
      return 401;
    case Code.PermissionDenied:
      return 403;
    case Code.NotFound:
      return 404;
    case Code.AlreadyExists:
    case Code.FailedPrecondition:
    case Code.Aborted:
      return 409;
    case Code.ResourceExhausted:
      return 429;
    case Code.Canceled:
      return 499;
    case Code.Unimplemented:
      return 501;
    case Code.Unavailable:
      return 503;
    case Code.DeadlineExceeded:
      return 504;
    // Raised only for a sandbox agent's corrupt reply (sandboxes/agent-errors.ts): bad gateway.
    case Code.DataLoss:
      return 502;
    default:
      return 500;
  }
}
