/** Why a network operation was refused; the api maps each to its Connect code in one interceptor. */
export type NetworkErrorCode = "not-found" | "failed-precondition" | "unavailable" | "internal";

/**
 * An error of the network domain with a stable code. Errors of the ports pass through as they
 * are (the store addressing adapter speaks ConnectError), and anything else is Internal.
 */
export class NetworkError extends Error {
  override readonly name = "NetworkError";
  constructor(
    readonly code: NetworkErrorCode,
    message: string,
  ) {
    super(message);
  }
}
