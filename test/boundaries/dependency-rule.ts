// The dependency rule of the repository, checked over the import graph (workspace-graph.ts):
//
//   cli, gateway, agent, services  →  packages/*  →  proto
//   test/, bench/                  →  anything (and only they import test/ or bench/)
//
// Arrows point down only: packages never import a service, the gateway, the agent or the CLI; a
// service never imports the gateway, the CLI or another service; the gateway, the agent and the CLI
// talk to services over RPC, not by importing them. Across workspaces, imports go through the
// package's name and its `exports` (no `../../services/x/src/...`), and every package imported is
// declared in the importer's package.json. No import cycles, type-only and dynamic imports included.
import type { Layer, SourceFile, Workspace, WorkspaceGraph } from "./workspace-graph.js";

export interface Violation {
  /** Repository-relative file (a package.json for manifest problems). */
  readonly file: string;
  readonly line: number;
  /** The import as written, or the exports key for manifest problems. */
  readonly specifier: string;
  readonly message: string;
}

/** What each layer may import besides its own workspace. */
const ALLOWED: Readonly<Record<Layer, readonly Layer[]>> = {
  contract: [],
  package: ["contract", "package"],
  service: ["contract", "package"],
  gateway: ["contract", "package"],
  agent: ["contract", "package"],
  cli: ["contract", "package"],
  harness: ["contract", "package", "service", "gateway", "agent", "cli", "harness"],
};

const LAYER_NAMES: Readonly<Record<Layer, string>> = {
  contract: "the contract",
  package: "a shared package",
  service: "a service",
  gateway: "the gateway",
  agent: "the agent",
  cli: "the CLI",
  harness: "the test/bench harness",
};

/** Test code may use devDependencies; shipped code only dependencies. */
const isTestCode = (file: SourceFile): boolean =>
  file.workspace.layer === "harness" || file.path.endsWith(".test.ts") || file.path.includes("/testing/");

function layerViolation(from: Workspace, to: Workspace): string | undefined {
  if (from === to) return undefined;
  if (from.layer === "service" && to.layer === "service") {
    return `a service (${from.dir}) must not import another service (${to.dir}); use its RPC client`;
  }
  if (!ALLOWED[from.layer].includes(to.layer)) {
    return `${LAYER_NAMES[from.layer]} (${from.dir}) must not import ${LAYER_NAMES[to.layer]} (${to.dir})`;
  }
  return undefined;
}

export function checkDependencyRule(graph: WorkspaceGraph): Violation[] {
  const violations: Violation[] = [];

  for (const workspace of graph.workspaces) {
    for (const key of Object.keys(workspace.manifest.exports)) {
      const resolved = exportTargetMissing(graph, workspace, key);
      if (resolved !== undefined) {
        violations.push({
          file: `${workspace.dir}/package.json`,
          line: 0,
          specifier: key,
          message: `exports "${key}" points at ${resolved}, which does not exist`,
        });
      }
    }
  }

  // One line per workspace and undeclared package (the first import, and how many more there are).
  const undeclared = new Map<string, { first: Violation; more: number }>();
  for (const file of graph.files.values()) {
    const manifest = file.workspace.manifest;
    for (const { ref, target } of file.imports) {
      const at = { file: file.path, line: ref.line, specifier: ref.specifier };
      const relative = ref.specifier.startsWith(".") || ref.specifier.startsWith("/");
      if (target.kind === "unresolved") {
        violations.push({ ...at, message: "cannot be resolved to a file" });
        continue;
      }
      if (target.kind === "no-export") {
        violations.push({
          ...at,
          message: `${target.workspace.manifest.name} exports no "${target.subpath}" (or its file is missing); add a deliberate subpath to ${target.workspace.dir}/package.json`,
        });
        continue;
      }
      if (target.kind === "builtin") continue;

      const packageName = target.kind === "npm" ? target.packageName : undefined;
      const workspace = target.kind === "file" ? target.workspace : undefined;

      if (target.kind === "file" && relative && workspace !== file.workspace) {
        violations.push({
          ...at,
          message:
            workspace === undefined
              ? "reaches outside every workspace"
              : `deep import into ${workspace.dir}; import "${workspace.manifest.name}" (or a subpath it exports) instead`,
        });
        continue;
      }

      const declaredName =
        packageName ?? (workspace !== file.workspace ? workspace?.manifest.name : undefined);
      if (declaredName !== undefined) {
        const inDeps = declaredName in manifest.dependencies;
        const inDevDeps = declaredName in manifest.devDependencies;
        if (!inDeps && !(inDevDeps && isTestCode(file))) {
          const key = `${file.workspace.dir}\0${declaredName}`;
          const seen = undeclared.get(key);
          if (seen !== undefined) seen.more++;
          else {
            const message = inDevDeps
              ? `"${declaredName}" is only a devDependency of ${file.workspace.dir}, but shipped code imports it; move it to dependencies`
              : `"${declaredName}" is not declared in ${file.workspace.dir}/package.json`;
            undeclared.set(key, { first: { ...at, message }, more: 0 });
          }
        }
      }

      if (workspace !== undefined) {
        const problem = layerViolation(file.workspace, workspace);
        if (problem !== undefined) violations.push({ ...at, message: problem });
      }
    }
  }
  for (const { first, more } of undeclared.values()) {
    const others = more === 0 ? "" : ` (and ${more} more import${more === 1 ? "" : "s"})`;
    violations.push({ ...first, message: `${first.message}${others}` });
  }
  return violations;
}

function exportTargetMissing(graph: WorkspaceGraph, workspace: Workspace, key: string): string | undefined {
  if (key.includes("*")) return undefined; // patterns are checked where they are imported
  const entry = workspace.manifest.exports[key];
  const source =
    typeof entry === "string"
      ? entry
      : entry !== null && typeof entry === "object"
        ? (entry as Record<string, unknown>)["source"]
        : undefined;
  if (typeof source !== "string") return undefined;
  const path = `${workspace.dir}/${source.replace(/^\.\//, "")}`;
  return graph.files.has(path) ? undefined : path;
}

/** Strongly connected components with more than one node (or a self-loop), as sorted lists. */
function stronglyConnected(
  nodes: readonly string[],
  edges: ReadonlyMap<string, readonly string[]>,
): string[][] {
  // Tarjan's algorithm, iterative so a deep graph cannot overflow the stack.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  for (const start of nodes) {
    if (index.has(start)) continue;
    const work: { node: string; next: number }[] = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const successors = edges.get(frame.node) ?? [];
      if (frame.next < successors.length) {
        const succ = successors[frame.next++]!;
        if (!index.has(succ)) {
          index.set(succ, counter);
          low.set(succ, counter++);
          stack.push(succ);
          onStack.add(succ);
          work.push({ node: succ, next: 0 });
        } else if (onStack.has(succ)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(succ)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        const selfLoop = (edges.get(frame.node) ?? []).includes(frame.node);
        if (component.length > 1 || selfLoop) components.push(component.sort());
      }
    }
  }
  return components.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** One concrete cycle inside a component, starting and ending at its first member. */
function cycleThrough(component: readonly string[], edges: ReadonlyMap<string, readonly string[]>): string[] {
  const members = new Set(component);
  const start = component[0]!;
  // Breadth-first from start's successors back to start, staying inside the component: the shortest cycle.
  const previous = new Map<string, string>();
  const queue: string[] = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const succ of edges.get(node) ?? []) {
      if (!members.has(succ)) continue;
      if (succ === start) {
        const path = [start];
        for (let at: string | undefined = node; at !== undefined && at !== start; at = previous.get(at)) {
          path.splice(1, 0, at);
        }
        return [...path, start];
      }
      if (!previous.has(succ)) {
        previous.set(succ, node);
        queue.push(succ);
      }
    }
  }
  return [start, start];
}

export interface Cycle {
  /** Every file (or workspace) in the strongly connected component. */
  readonly members: readonly string[];
  /** One shortest cycle through the first member, e.g. [a, b, c, a]. */
  readonly path: readonly string[];
  /** Edges of `path` made only of `import type` (erased at run time, still a coupling), as "from → to". */
  readonly typeOnlyEdges: ReadonlySet<string>;
}

/** Import cycles among source files: every import counts, `import type` and `import()` included. */
export function findFileCycles(graph: WorkspaceGraph): Cycle[] {
  const edges = new Map<string, string[]>();
  const valueEdges = new Set<string>();
  for (const file of graph.files.values()) {
    const targets = new Set<string>();
    for (const { ref, target } of file.imports) {
      if (target.kind !== "file" || !graph.files.has(target.path)) continue;
      targets.add(target.path);
      if (!ref.typeOnly) valueEdges.add(`${file.path} → ${target.path}`);
    }
    edges.set(file.path, [...targets].sort());
  }
  return stronglyConnected([...edges.keys()].sort(), edges).map((members) => {
    const path = cycleThrough(members, edges);
    const typeOnlyEdges = new Set<string>();
    for (let k = 0; k + 1 < path.length; k++) {
      const edge = `${path[k]} → ${path[k + 1]}`;
      if (!valueEdges.has(edge)) typeOnlyEdges.add(edge);
    }
    return { members, path, typeOnlyEdges };
  });
}

/** Cycles among workspaces (a → b by one file, b → a by another is a cycle even with no file cycle). */
export function findWorkspaceCycles(graph: WorkspaceGraph): Cycle[] {
  const edges = new Map<string, Set<string>>(graph.workspaces.map((w) => [w.dir, new Set<string>()]));
  for (const file of graph.files.values()) {
    for (const { target } of file.imports) {
      if (target.kind === "file" && target.workspace !== undefined && target.workspace !== file.workspace) {
        edges.get(file.workspace.dir)?.add(target.workspace.dir);
      }
    }
  }
  const sorted = new Map([...edges].map(([k, v]) => [k, [...v].sort()]));
  return stronglyConnected([...sorted.keys()].sort(), sorted).map((members) => ({
    members,
    path: cycleThrough(members, sorted),
    typeOnlyEdges: new Set<string>(),
  }));
}

export function formatViolation(v: Violation): string {
  // line 0: a package.json problem, whose message names the exports key.
  return v.line > 0
    ? `${v.file}:${v.line}: import "${v.specifier}": ${v.message}`
    : `${v.file}: ${v.message}`;
}

export function formatCycle(kind: "file" | "workspace", cycle: Cycle): string {
  const steps = cycle.path.map((node, k) => {
    if (k === 0) return node;
    const typeOnly = cycle.typeOnlyEdges.has(`${cycle.path[k - 1]} → ${node}`);
    return `${typeOnly ? "→ (type) " : "→ "}${node}`;
  });
  return `${kind} import cycle: ${steps.join(" ")}`;
}
