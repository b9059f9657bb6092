import { posix } from "node:path";

/**
 * The request path with `.`/`..` segments resolved and repeated slashes collapsed, so that
 * routing and the auth check see the same path (`//health/../sandboxes` is `/sandboxes`).
 */
export function cleanPath(rawPath: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    decoded = rawPath;
  }
  const cleaned = posix.normalize(`/${decoded}`).replace(/\/+/g, "/");
  return cleaned.length > 1 && cleaned.endsWith("/") ? cleaned.slice(0, -1) : cleaned;
}
