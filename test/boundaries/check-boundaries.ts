// `npm test` step "dependency rule": checks the layering, the package boundaries and import cycles
// of the whole repository (see dependency-rule.ts) and prints one line per problem, naming the file
// and the offending import. Exit code 1 when there is any.
//   node --conditions=source --import tsx test/boundaries/check-boundaries.ts [repository root]
import { join } from "node:path";
import {
  checkDependencyRule,
  findFileCycles,
  findWorkspaceCycles,
  formatCycle,
  formatViolation,
} from "./dependency-rule.js";
import { buildWorkspaceGraph } from "./workspace-graph.js";

const root = process.argv[2] ?? join(import.meta.dirname, "..", "..");
const graph = buildWorkspaceGraph(root);
const problems = [
  ...checkDependencyRule(graph).map(formatViolation),
  ...findWorkspaceCycles(graph).map((c) => formatCycle("workspace", c)),
  ...findFileCycles(graph).map((c) => formatCycle("file", c)),
];
let imports = 0;
for (const file of graph.files.values()) imports += file.imports.length;
for (const line of problems) process.stderr.write(`${line}\n`);
process.stdout.write(
  `dependency rule: ${graph.workspaces.length} workspaces, ${graph.files.size} files, ${imports} imports, ` +
    `${problems.length} problem${problems.length === 1 ? "" : "s"}\n`,
);
process.exit(problems.length > 0 ? 1 : 0);
