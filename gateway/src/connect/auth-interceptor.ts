import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { RequestAuth } from "../auth/request-auth.js";

const userKey = createContextKey<AuthenticatedUser | undefined>(undefined, { description: "bhatti user" });

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
    if (!publicProcedures.has(procedureName(req.method))) {
      const user = await auth.authenticate(req.header.get("authorization"));
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
