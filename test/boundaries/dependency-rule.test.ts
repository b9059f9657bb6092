// The dependency rule check against small repositories written to a temp dir: one that follows the
// rule passes, and each kind of break (an arrow pointing up, a deep import, an undeclared or
// unexported package, an import cycle of any kind) is reported with the file and the import.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  checkDependencyRule,
  findFileCycles,
  findWorkspaceCycles,
  formatCycle,
  formatViolation,
} from "./dependency-rule.js";
import { buildWorkspaceGraph, packageNameOf } from "./workspace-graph.js";

interface FixtureWorkspace {
  readonly name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  exports?: Record<string, string>;
  files: Record<string, string>;
}

/** A repository shaped like bhatti's, each layer present and importing only downwards. */
function baseWorkspaces(): Record<string, FixtureWorkspace> {
  const src = (file: string) => ({ ".": `./src/${file}` });
  return {
    proto: {
      name: "@bhatti/proto",
      exports: { ".": "./src/index.ts", "./v1/*": "./src/gen/*.ts" },
      dependencies: { "@bufbuild/protobuf": "2.17.0" },
      files: {
        "src/index.ts": 'export * from "./gen/store_pb.js";\n',
        "src/gen/store_pb.ts":
          'import type { Message } from "@bufbuild/protobuf";\nexport type Store = Message;\n',
      },
    },
    "packages/runtime": {
      name: "@bhatti/runtime",
      exports: src("index.ts"),
      dependencies: { "@bhatti/proto": "*", yaml: "2.9.1" },
      devDependencies: { vitest: "5.1.2" },
      files: {
        "src/index.ts":
          'import "yaml";\nexport type { Store } from "@bhatti/proto";\nexport const runtime = 1;\n',
        "src/index.test.ts":
          'import { it } from "vitest";\nimport { runtime } from "./index.js";\nit("", () => runtime);\n',
      },
    },
    "services/store": {
      name: "@bhatti/service-store",
      exports: { ".": "./src/index.ts", "./testing": "./src/testing/store-process.ts" },
      dependencies: { "@bhatti/runtime": "*" },
      files: {
        "src/index.ts": 'import { runtime } from "@bhatti/runtime";\nexport const store = runtime;\n',
        "src/main.ts": 'import { store } from "./index.js";\nstore;\n',
        "src/testing/store-process.ts": "export const startStoreProcess = () => 1;\n",
      },
    },
    "services/vmm": {
      name: "@bhatti/service-vmm",
      exports: { "./engine": "./src/engine/index.ts" },
      dependencies: { "@bhatti/proto": "*", "@bhatti/runtime": "*" },
      files: {
        "src/engine/index.ts": 'export type { Engine } from "./engine.js";\n',
        "src/engine/engine.ts":
          'import type { Store } from "@bhatti/proto/v1/store_pb";\nexport type Engine = Store;\n',
        "src/main.ts":
          'import type { Engine } from "./engine/index.js";\nimport "@bhatti/runtime";\nexport type E = Engine;\n',
      },
    },
    gateway: {
      name: "@bhatti/gateway",
      exports: src("index.ts"),
      dependencies: { "@bhatti/runtime": "*" },
      files: { "src/index.ts": 'import "@bhatti/runtime";\nexport const createGateway = () => 1;\n' },
    },
    agent: {
      name: "@bhatti/agent",
      exports: { "./testing": "./src/testing/agent-process.ts" },
      dependencies: { "@bhatti/runtime": "*" },
      files: {
        "src/agent.ts": 'import "@bhatti/runtime";\n',
        "src/testing/agent-process.ts": "export const startAgentProcess = () => 1;\n",
      },
    },
    cli: {
      name: "@bhatti/cli",
      exports: {},
      dependencies: { "@bhatti/runtime": "*", commander: "15.1.0" },
      files: {
        "src/bhatti.ts":
          'import "commander";\nimport "@bhatti/runtime";\nawait import("./commands/user-action.js");\n',
        "src/commands/user-action.ts": "export const run = 1;\n",
      },
    },
    test: {
      name: "@bhatti/test",
      exports: { "./harness": "./harness.ts" },
      devDependencies: {
        "@bhatti/agent": "*",
        "@bhatti/gateway": "*",
        "@bhatti/service-store": "*",
        "@bhatti/service-vmm": "*",
        vitest: "5.1.2",
      },
      files: {
        "harness.ts":
          'import { createGateway } from "@bhatti/gateway";\nexport const product = createGateway;\n',
        "product.test.ts": [
          'import { it } from "vitest";',
          'import { startAgentProcess } from "@bhatti/agent/testing";',
          'import { startStoreProcess } from "@bhatti/service-store/testing";',
          'import type { Engine } from "@bhatti/service-vmm/engine";',
          'import { product } from "./harness.js";',
          'it("", () => [startAgentProcess, startStoreProcess, product] satisfies unknown[] as Engine[]);',
          "",
        ].join("\n"),
      },
    },
    bench: {
      name: "@bhatti/bench",
      exports: {},
      devDependencies: { "@bhatti/test": "*" },
      files: { "api/bench.ts": 'import { product } from "@bhatti/test/harness";\nproduct;\n' },
    },
  };
}

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function writeFixture(workspaces: Record<string, FixtureWorkspace>): string {
  const root = mkdtempSync(join(tmpdir(), "bhatti-test-boundaries-"));
  roots.push(root);
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  write(
    "package.json",
    JSON.stringify({
      name: "fixture",
      private: true,
      workspaces: ["proto", "packages/*", "services/*", "gateway", "agent", "cli", "test", "bench"],
    }),
  );
  for (const [dir, w] of Object.entries(workspaces)) {
    const exportsMap = Object.fromEntries(
      Object.entries(w.exports ?? {}).map(([key, target]) => [
        key,
        { source: target, types: target, default: target.replace("./src/", "./dist/").replace(".ts", ".js") },
      ]),
    );
    write(
      `${dir}/package.json`,
      JSON.stringify({
        name: w.name,
        type: "module",
        exports: exportsMap,
        dependencies: w.dependencies ?? {},
        devDependencies: w.devDependencies ?? {},
      }),
    );
    for (const [file, text] of Object.entries(w.files)) write(`${dir}/${file}`, text);
  }
  return root;
}

/** Every problem the check reports for a fixture, as the lines the npm test step prints. */
function problemsOf(workspaces: Record<string, FixtureWorkspace>): string[] {
  const graph = buildWorkspaceGraph(writeFixture(workspaces));
  return [
    ...checkDependencyRule(graph).map(formatViolation),
    ...findWorkspaceCycles(graph).map((c) => formatCycle("workspace", c)),
    ...findFileCycles(graph).map((c) => formatCycle("file", c)),
  ];
}

/** The base fixture with one extra file in one workspace (and the import declared, unless told). */
function withFile(
  dir: string,
  file: string,
  text: string,
  declare?: string,
): Record<string, FixtureWorkspace> {
  const workspaces = baseWorkspaces();
  const w = workspaces[dir]!;
  w.files[file] = text;
  if (declare !== undefined) w.dependencies = { ...w.dependencies, [packageNameOf(declare)]: "*" };
  return workspaces;
}

describe("dependency rule", () => {
  it("passes a repository whose arrows all point down", () => {
    expect(problemsOf(baseWorkspaces())).toEqual([]);
  });

  it.each([
    [
      "packages/runtime",
      "@bhatti/service-store",
      "a shared package (packages/runtime) must not import a service",
    ],
    [
      "packages/runtime",
      "@bhatti/gateway",
      "a shared package (packages/runtime) must not import the gateway",
    ],
    [
      "packages/runtime",
      "@bhatti/agent/testing",
      "a shared package (packages/runtime) must not import the agent",
    ],
    ["packages/runtime", "@bhatti/test/harness", "must not import the test/bench harness (test)"],
    ["proto", "@bhatti/runtime", "the contract (proto) must not import a shared package"],
    ["services/vmm", "@bhatti/gateway", "a service (services/vmm) must not import the gateway"],
    ["services/vmm", "@bhatti/service-store", "a service (services/vmm) must not import another service"],
    [
      "services/store",
      "@bhatti/test/harness",
      "a service (services/store) must not import the test/bench harness",
    ],
    ["gateway", "@bhatti/service-store", "the gateway (gateway) must not import a service (services/store)"],
    ["agent", "@bhatti/gateway", "the agent (agent) must not import the gateway"],
    ["cli", "@bhatti/gateway", "the CLI (cli) must not import the gateway (gateway)"],
  ])("reports %s importing %s", (dir, specifier, message) => {
    const problems = problemsOf(withFile(dir, "src/upward.ts", `import "${specifier}";\n`, specifier));
    const upward = problems.filter((p) => p.startsWith(`${dir}/src/upward.ts:1: import "${specifier}": `));
    expect(upward).toHaveLength(1);
    expect(upward[0]).toContain(message);
  });

  it("counts a type-only import and a test file as arrows too", () => {
    const problems = problemsOf(
      withFile(
        "packages/runtime",
        "src/x.test.ts",
        'import { it } from "vitest";\nimport type { E } from "@bhatti/service-vmm/engine";\n',
        "@bhatti/service-vmm",
      ),
    );
    expect(problems).toEqual([
      'packages/runtime/src/x.test.ts:2: import "@bhatti/service-vmm/engine": a shared package (packages/runtime) must not import a service (services/vmm)',
      "workspace import cycle: packages/runtime → services/vmm → packages/runtime",
    ]);
  });

  it("reports a relative import into another workspace as a deep import", () => {
    const problems = problemsOf(
      withFile(
        "test",
        "deep.test.ts",
        'import type { Engine } from "../services/vmm/src/engine/engine.js";\n',
      ),
    );
    expect(problems).toEqual([
      'test/deep.test.ts:1: import "../services/vmm/src/engine/engine.js": deep import into services/vmm; import "@bhatti/service-vmm" (or a subpath it exports) instead',
    ]);
  });

  it("reports a subpath the package does not export, and an export whose file is missing", () => {
    const workspaces = withFile("test", "unexported.test.ts", 'import "@bhatti/service-vmm/src/main.js";\n');
    workspaces["services/vmm"]!.exports = {
      ...workspaces["services/vmm"]!.exports,
      "./adapters": "./src/adapters/index.ts",
    };
    const problems = problemsOf(workspaces);
    expect(problems).toEqual([
      'services/vmm/package.json: exports "./adapters" points at services/vmm/src/adapters/index.ts, which does not exist',
      'test/unexported.test.ts:1: import "@bhatti/service-vmm/src/main.js": @bhatti/service-vmm exports no "./src/main.js" (or its file is missing); add a deliberate subpath to services/vmm/package.json',
    ]);
  });

  it("reports packages that are not declared, once per workspace, and devDependencies in shipped code", () => {
    const workspaces = baseWorkspaces();
    workspaces["services/store"]!.files["src/a.ts"] = 'import "ws";\nimport "vitest";\n';
    workspaces["services/store"]!.files["src/b.ts"] = 'import { WebSocket } from "ws";\nWebSocket;\n';
    workspaces["services/store"]!.files["src/b.test.ts"] = 'import "fast-check";\n';
    workspaces["services/store"]!.devDependencies = { vitest: "5.1.2", "fast-check": "4.11.0" };
    expect(problemsOf(workspaces)).toEqual([
      'services/store/src/a.ts:1: import "ws": "ws" is not declared in services/store/package.json (and 1 more import)',
      'services/store/src/a.ts:2: import "vitest": "vitest" is only a devDependency of services/store, but shipped code imports it; move it to dependencies',
    ]);
  });

  it("reports a cycle of type-only imports, marking the type-only edges", () => {
    const workspaces = baseWorkspaces();
    Object.assign(workspaces.agent!.files, {
      "src/context.ts":
        'import type { Registry } from "./registry.js";\nexport interface Context { r: Registry }\n',
      "src/registry.ts": 'import { spec } from "./spec.js";\nexport interface Registry { s: typeof spec }\n',
      "src/spec.ts": 'import type { Context } from "./context.js";\nexport const spec = (c: Context) => c;\n',
    });
    expect(problemsOf(workspaces)).toEqual([
      "file import cycle: agent/src/context.ts → (type) agent/src/registry.ts → agent/src/spec.ts → (type) agent/src/context.ts",
    ]);
  });

  it("reports a cycle closed by a dynamic import()", () => {
    const workspaces = baseWorkspaces();
    workspaces.cli!.files["src/commands/user-action.ts"] =
      'import type { Flags } from "../bhatti.js";\nexport const run = (f: Flags) => f;\n';
    workspaces.cli!.files["src/bhatti.ts"] += "export interface Flags { n?: number }\n";
    expect(problemsOf(workspaces)).toEqual([
      "file import cycle: cli/src/bhatti.ts → cli/src/commands/user-action.ts → (type) cli/src/bhatti.ts",
    ]);
  });

  it("reports a cycle between workspaces even when no file cycle closes it", () => {
    const workspaces = baseWorkspaces();
    workspaces["packages/agent-client"] = {
      name: "@bhatti/agent-client",
      exports: { ".": "./src/index.ts" },
      dependencies: { "@bhatti/agent-protocol": "*" },
      files: { "src/index.ts": 'import "@bhatti/agent-protocol";\nexport const client = 1;\n' },
    };
    workspaces["packages/agent-protocol"] = {
      name: "@bhatti/agent-protocol",
      exports: { ".": "./src/index.ts" },
      devDependencies: { "@bhatti/agent-client": "*" },
      files: {
        "src/index.ts": "export const protocol = 1;\n",
        "src/index.test.ts": 'import { client } from "@bhatti/agent-client";\nclient;\n',
      },
    };
    expect(problemsOf(workspaces)).toEqual([
      "workspace import cycle: packages/agent-client → packages/agent-protocol → packages/agent-client",
    ]);
  });

  it("fails the npm test step with one line per problem naming the file and the import", () => {
    const root = writeFixture(
      withFile("services/vmm", "src/upward.ts", 'import "../../../gateway/src/index.js";\n'),
    );
    const run = spawnSync(
      process.execPath,
      ["--conditions=source", "--import", "tsx", join(import.meta.dirname, "check-boundaries.ts"), root],
      { encoding: "utf8" },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(
      'services/vmm/src/upward.ts:1: import "../../../gateway/src/index.js": deep import into gateway; import "@bhatti/gateway" (or a subpath it exports) instead\n',
    );
    expect(run.stdout).toMatch(/^dependency rule: 9 workspaces, \d+ files, \d+ imports, 1 problem\n$/);
  });
});
