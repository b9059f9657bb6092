import { isSandboxId } from "@bhatti/proto";
import { Code, ConnectError } from "@connectrpc/connect";

/** The id unchanged, or InvalidArgument: how a service handler checks a sandbox id it is given. */
export function requireSandboxId(id: string): string {
  if (!isSandboxId(id)) {
    throw new ConnectError(`sandbox id must be 16 lowercase hex chars, got "${id}"`, Code.InvalidArgument);
  }
  return id;
}
