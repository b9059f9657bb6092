// The import graph of the repository's workspaces: every .ts source file, each import resolved the
// way Node and TypeScript resolve it here (relative paths with `.js` → `.ts`, `@bhatti/*` through the
// package's `exports` with the `source` condition, bare names to npm packages, `node:` builtins).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, posix } from "node:path";
import { type ImportRef, scanImports } from "./import-scan.js";

/** Where a workspace sits in the layering; see dependency-rule.ts for who may import whom. */
export type Layer = "contract" | "package" | "service" | "gateway" | "agent" | "cli" | "harness";

export interface Manifest {
  readonly name: string;
  readonly dependencies: Readonly<Record<string, string>>;
  readonly devDependencies: Readonly<Record<string, string>>;
  readonly exports: Readonly<Record<string, unknown>>;
}

export interface Workspace {
  /** Directory relative to the repository root, with `/` separators. */
  readonly dir: string;
  readonly layer: Layer;
  readonly manifest: Manifest;
}

export type ImportTarget =
  | { readonly kind: "file"; readonly path: string; readonly workspace: Workspace | undefined }
  | { readonly kind: "builtin" }
  | { readonly kind: "npm"; readonly packageName: string }
  /** `@bhatti/x/sub` where x exists but its `exports` has no such entry, or the entry's file is missing. */
  | { readonly kind: "no-export"; readonly workspace: Workspace; readonly subpath: string }
  | { readonly kind: "unresolved" };

export interface ResolvedImport {
  readonly ref: ImportRef;
  readonly target: ImportTarget;
}

export interface SourceFile {
  readonly path: string;
  readonly workspace: Workspace;
  readonly imports: readonly ResolvedImport[];
}

export interface WorkspaceGraph {
  readonly root: string;
  readonly workspaces: readonly Workspace[];
  readonly files: ReadonlyMap<string, SourceFile>;
}

const SOURCE_EXTENSIONS = [".ts", ".mts", ".tsx"];
const SKIPPED_DIRS = new Set(["node_modules", "dist", ".git", "results"]);

function layerOf(dir: string): Layer {
  if (dir === "proto") return "contract";
  if (dir.startsWith("packages/")) return "package";
  if (dir.startsWith("services/")) return "service";
  if (dir === "gateway" || dir === "agent" || dir === "cli") return dir;
  if (dir === "test" || dir === "bench") return "harness";
  throw new Error(`workspace ${dir} has no layer; add it to layerOf() in ${import.meta.filename}`);
}

function readManifest(path: string): Manifest {
  const json = JSON.parse(readFileSync(path, "utf8")) as Partial<Manifest>;
  return {
    name: json.name ?? "",
    dependencies: json.dependencies ?? {},
    devDependencies: json.devDependencies ?? {},
    exports: (json.exports as Record<string, unknown> | undefined) ?? {},
  };
}

function listWorkspaceDirs(root: string): string[] {
  const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    workspaces?: string[];
  };
  const dirs: string[] = [];
  for (const pattern of rootManifest.workspaces ?? []) {
    if (pattern.endsWith("/*")) {
      const parent = pattern.slice(0, -2);
      for (const entry of readdirSync(join(root, parent)).sort()) {
        if (existsSync(join(root, parent, entry, "package.json"))) dirs.push(`${parent}/${entry}`);
      }
    } else if (existsSync(join(root, pattern, "package.json"))) {
      dirs.push(pattern);
    }
  }
  return dirs;
}

function listSources(root: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(root, rel)).sort()) {
      if (SKIPPED_DIRS.has(entry)) continue;
      const child = rel === "" ? entry : `${rel}/${entry}`;
      if (statSync(join(root, child)).isDirectory()) walk(child);
      else if (SOURCE_EXTENSIONS.some((ext) => entry.endsWith(ext)) && !entry.endsWith(".d.ts")) {
        out.push(child);
      }
    }
  };
  walk(dir);
  return out;
}

/** The `source` (else `default`) target of one `exports` entry, conditions possibly nested. */
function conditionTarget(entry: unknown): string | undefined {
  if (typeof entry === "string") return entry;
  if (entry === null || typeof entry !== "object") return undefined;
  const conditions = entry as Record<string, unknown>;
  return conditionTarget(conditions.source) ?? conditionTarget(conditions.default);
}

/** Resolves `./sub` against an `exports` map (exact keys first, then one-`*` patterns). */
export function resolveExport(
  exportsMap: Readonly<Record<string, unknown>>,
  subpath: string,
): string | undefined {
  const exact = exportsMap[subpath];
  if (exact !== undefined) return conditionTarget(exact);
  for (const [key, entry] of Object.entries(exportsMap)) {
    const star = key.indexOf("*");
    if (star === -1) continue;
    const prefix = key.slice(0, star);
    const suffix = key.slice(star + 1);
    if (subpath.startsWith(prefix) && subpath.endsWith(suffix) && subpath.length >= key.length - 1) {
      const matched = subpath.slice(prefix.length, subpath.length - suffix.length);
      return conditionTarget(entry)?.replaceAll("*", matched);
    }
  }
  return undefined;
}

/** `lodash/fp` → `lodash`, `@scope/pkg/sub` → `@scope/pkg`. */
export function packageNameOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

function resolveRelativeFile(root: string, fromFile: string, specifier: string): string | undefined {
  const base = posix.normalize(posix.join(posix.dirname(fromFile), specifier));
  const candidates = [base];
  if (base.endsWith(".js")) candidates.unshift(`${base.slice(0, -3)}.ts`, `${base.slice(0, -3)}.tsx`);
  if (base.endsWith(".mjs")) candidates.unshift(`${base.slice(0, -4)}.mts`);
  candidates.push(`${base}.ts`, `${base}/index.ts`);
  for (const candidate of candidates) {
    const abs = join(root, candidate);
    if (existsSync(abs) && statSync(abs).isFile()) return candidate;
  }
  return undefined;
}

export function buildWorkspaceGraph(root: string): WorkspaceGraph {
  const workspaces: Workspace[] = listWorkspaceDirs(root).map((dir) => ({
    dir,
    layer: layerOf(dir),
    manifest: readManifest(join(root, dir, "package.json")),
  }));
  const byName = new Map(workspaces.map((w) => [w.manifest.name, w]));
  // Longest directory first, so a file belongs to its innermost workspace.
  const byDirLength = [...workspaces].sort((a, b) => b.dir.length - a.dir.length);
  const workspaceOf = (path: string): Workspace | undefined =>
    byDirLength.find((w) => path === w.dir || path.startsWith(`${w.dir}/`));

  const resolve = (fromFile: string, specifier: string): ImportTarget => {
    if (specifier.startsWith(".") || specifier.startsWith("/")) {
      const path = resolveRelativeFile(root, fromFile, specifier);
      return path === undefined
        ? { kind: "unresolved" }
        : { kind: "file", path, workspace: workspaceOf(path) };
    }
    if (isBuiltin(specifier)) return { kind: "builtin" };
    const packageName = packageNameOf(specifier);
    const workspace = byName.get(packageName);
    if (workspace === undefined) return { kind: "npm", packageName };
    const subpath = `.${specifier.slice(packageName.length)}`;
    const target = resolveExport(workspace.manifest.exports, subpath);
    if (target === undefined) return { kind: "no-export", workspace, subpath };
    const path = posix.normalize(posix.join(workspace.dir, target));
    if (!existsSync(join(root, path))) return { kind: "no-export", workspace, subpath };
    return { kind: "file", path, workspace };
  };

  const files = new Map<string, SourceFile>();
  for (const workspace of workspaces) {
    for (const path of listSources(root, workspace.dir)) {
      // A nested workspace's files belong to it, not to the parent directory's workspace.
      if (workspaceOf(path) !== workspace) continue;
      const source = readFileSync(join(root, path), "utf8");
      const imports = scanImports(source).map((ref) => ({ ref, target: resolve(path, ref.specifier) }));
      files.set(path, { path, workspace, imports });
    }
  }
  return { root, workspaces, files };
}
