import type { Stats } from "node:fs";
import { basename } from "node:path";
import type { FileInfo } from "@bhatti/agent-protocol";

/** Permission bits as v1 prints them: 4 octal digits, e.g. "0644". */
export function formatMode(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, "0");
}

export function fileInfoOf(name: string, stats: Stats): FileInfo {
  return {
    name,
    size: stats.size,
    mode: formatMode(stats.mode),
    is_dir: stats.isDirectory(),
    mtime: Math.floor(stats.mtimeMs / 1000),
  };
}

/** Go's FileInfo.Name(): the last element, "/" for the root. */
export function baseNameOf(path: string): string {
  const name = basename(path);
  return name === "" ? "/" : name;
}
