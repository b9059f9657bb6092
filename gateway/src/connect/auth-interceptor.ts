import type { DescMethod } from "@bufbuild/protobuf";
import { type HandlerContext, type Interceptor, createContextKey } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { RequestAuth } from "../auth/request-auth.js";

const userKey = createContextKey<AuthenticatedUser | undefined>(undefined, { description: "bhatti user" });

/** The peer address, set by the node adapter (see server.ts) for auth.failed events. */
export const remoteAddressKey = createContextKey<string>("", { description: "remote address" });

/** `package.Service/Method` of a method, the form the public-procedure list uses. */
export function procedureName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/**
 * Resolves the Bearer key of every call (except the public procedures) before the handler
 * runs; handlers read the caller with `callerOf(ctx)`.
 */
export function createAuthInterceptor(auth: RequestAuth, publicProcedures: ReadonlySet<string>): Interceptor {
  return (next) => async (req) => {
    const procedure = procedureName(req.method);
    if (!publicProcedures.has(procedure)) {
      const user = await auth.authenticate(req.header.get("authorization"), {
        remoteAddr: req.contextValues.get(remoteAddressKey),
        path: `/${procedure}`,
      });
      req.contextValues.set(userKey, user);
    }
    return next(req);
  };
}

/** The authenticated caller of a Connect handler. */
export function callerOf(ctx: HandlerContext): AuthenticatedUser {
  const user = ctx.values.get(userKey);
  if (user === undefined) throw new Error("callerOf() used in a public procedure");
  return user;
}
