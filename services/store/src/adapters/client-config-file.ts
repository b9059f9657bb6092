import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";

/**
 * Writes `api_url` and `auth_token` into the CLI's config file (keeping any other keys), with
 * the file at mode 0600 and its directory at 0700. Written to a temp file and renamed, so a
 * crash never leaves half a file; synchronous, so it can run inside a database transaction.
 */
export function writeClientConfig(path: string, apiUrl: string, authToken: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  let existing: Record<string, unknown> = {};
  try {
    const parsed: unknown = parseYaml(readFileSync(path, "utf8"));
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
      existing = parsed as Record<string, unknown>;
    }
  } catch {
    // Missing or unreadable: start from an empty file.
  }
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, stringifyYaml({ ...existing, api_url: apiUrl, auth_token: authToken }), {
    mode: 0o600,
    flush: true,
  });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  // The rename is durable only once the directory is synced (the file itself was flushed).
  const dirFd = openSync(dir, "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** `http://<listen>`, with a wildcard listen address made reachable locally. */
export function apiUrlFromListen(listen: string): string {
  const m = /^(.*):(\d+)$/.exec(listen);
  const rawHost = m?.[1] ?? listen;
  const port = m?.[2];
  const host = rawHost === "" || rawHost === "0.0.0.0" || rawHost === "[::]" ? "127.0.0.1" : rawHost;
  return port === undefined ? `http://${host}` : `http://${host}:${port}`;
}
