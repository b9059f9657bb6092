import { Code, ConnectError } from "@connectrpc/connect";
import { CliError, hintForMessage } from "./cli-error.js";

/** A failed call to the gateway as a user-facing error with a hint. Loaded only when a call fails. */
export function describeGatewayError(e: unknown, url: string): CliError {
  const err = ConnectError.from(e);
  switch (err.code) {
    case Code.Unavailable:
      return new CliError(
        `cannot reach bhatti at ${url}: ${err.rawMessage}`,
        "is the server running? start it with: bhatti serve (or pass --url)",
      );
    case Code.Unauthenticated:
      return new CliError(
        err.rawMessage,
        "pass an API key with --token, BHATTI_TOKEN or auth_token in ~/.bhatti/config.yaml",
      );
    case Code.PermissionDenied:
      return new CliError(err.rawMessage, "this command needs an admin API key");
    case Code.DeadlineExceeded:
      return new CliError(`bhatti at ${url} did not answer in time: ${err.rawMessage}`);
    default:
      return new CliError(err.rawMessage, hintForMessage(err.rawMessage));
  }
}
