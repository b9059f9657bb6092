import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";

/** The header that carries a request id from process to process. */
export const REQUEST_ID_HEADER = "x-bhatti-request-id";

const storage = new AsyncLocalStorage<{ requestId: string }>();

/** A new request id: `req_` and 16 hex chars, the shape the REST API shows in 500s. */
/** Random bytes drawn 4 KiB at a time: one getrandom per 512 ids, not one per request. */
let idBytes = Buffer.alloc(0);
let idAt = 0;

export function newRequestId(): string {
  if (idAt + 8 > idBytes.byteLength) {
    idBytes = randomBytes(4096);
    idAt = 0;
  }
  const id = idBytes.toString("hex", idAt, idAt + 8);
  idAt += 8;
  return `req_${id}`;
}

/** The request id of the call being handled, if any. */
export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}

/** Runs `fn` with `requestId` as the current request id (also across awaits). */
export function withRequestId<T>(requestId: string, fn: () => T): T {
  return storage.run({ requestId }, fn);
}

const validRequestId = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Accepts a request id from a peer only if it is short and plain, so logs cannot be forged. */
export function sanitizeRequestId(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  return validRequestId.test(value) ? value : undefined;
}
