import { Code, ConnectError } from "@connectrpc/connect";

export const MAX_LABELS = 16;
const LABEL_SEGMENT = /^[a-zA-Z0-9]([a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const LABEL_VALUE = /^[a-zA-Z0-9._-]{1,256}$/;
const RESERVED_PREFIX = "bhatti.sh/";

/** Keys are k8s-style `[prefix/]name` (name up to 63 chars); values `[a-zA-Z0-9._-]{1,256}`. */
export function checkLabel(key: string, value: string): void {
  const slash = key.indexOf("/");
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (!LABEL_SEGMENT.test(name) || (prefix !== undefined && !LABEL_PREFIX.test(prefix))) {
    throw new ConnectError(
      `invalid label key ${JSON.stringify(key.slice(0, 80))}: must be [prefix/]name with name matching ${LABEL_SEGMENT.source}`,
      Code.InvalidArgument,
    );
  }
  if (key.startsWith(RESERVED_PREFIX)) {
    throw new ConnectError(`label prefix ${RESERVED_PREFIX} is reserved`, Code.InvalidArgument);
  }
  if (!LABEL_VALUE.test(value)) {
    throw new ConnectError(
      `invalid value for label ${key}: must match ${LABEL_VALUE.source}`,
      Code.InvalidArgument,
    );
  }
}

export function checkLabels(labels: Record<string, string>): void {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) {
    throw new ConnectError(`too many labels (${keys.length} > ${MAX_LABELS})`, Code.InvalidArgument);
  }
  for (const k of keys) checkLabel(k, labels[k] ?? "");
}
