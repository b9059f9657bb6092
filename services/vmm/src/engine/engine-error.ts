/** Why an engine call failed; the API layer maps each code to a Connect code. */
export type EngineErrorCode =
  | "not_found"
  | "already_exists"
  | "invalid_argument"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "internal";

export class EngineError extends Error {
  override readonly name = "EngineError";
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isEngineError(e: unknown, code?: EngineErrorCode): e is EngineError {
  return e instanceof EngineError && (code === undefined || e.code === code);
}
