#!/usr/bin/env node
// `npm test`: typecheck, lint, the dependency rule, proto drift check, build, every vitest suite,
// then the leak check.
// Each non-vitest step counts as one test. The last line of output is always `N passed, N failed`.
//
// Generated proto code (proto/src/gen) is committed; the drift step regenerates it with
// `buf generate` and fails if that changed anything, so a .proto edit without a regenerate fails CI.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
let passed = 0;
let failed = 0;
const failures = [];

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", ...options });
  if (r.error) process.stderr.write(`${cmd}: ${r.error.message}\n`);
  return r.status === 0;
}

function step(name, fn) {
  process.stdout.write(`\n=== ${name}\n`);
  let ok = false;
  try {
    ok = fn();
  } catch (e) {
    process.stderr.write(`${name}: ${e instanceof Error ? e.message : String(e)}\n`);
  }
  if (ok) passed++;
  else {
    failed++;
    failures.push(name);
  }
  process.stdout.write(`=== ${name}: ${ok ? "ok" : "FAILED"}\n`);
  return ok;
}

/** Content hash of a directory tree, used when git cannot tell what changed. */
function treeHash(dir) {
  const hash = createHash("sha256");
  const walk = (d) => {
    for (const entry of readdirSync(d).sort()) {
      const p = join(d, entry);
      if (statSync(p).isDirectory()) walk(p);
      else hash.update(relative(dir, p)).update("\0").update(readFileSync(p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return hash.digest("hex");
}

step("typecheck", () => run(bin("tsc"), ["--noEmit", "-p", "tsconfig.json"]));
step("lint", () => {
  const biome = run(bin("biome"), ["lint", "--error-on-warnings", "."]);
  const buf = run(bin("buf"), ["lint"]);
  return biome && buf;
});
// Layering, package boundaries and import cycles (test/boundaries/dependency-rule.ts): one line
// per problem, naming the file and the offending import.
step("dependency rule", () =>
  run(process.execPath, [
    "--conditions=source",
    "--import",
    "tsx",
    join(root, "test/boundaries/check-boundaries.ts"),
  ]),
);
step("proto drift", () => {
  const gen = join(root, "proto/src/gen");
  const git = spawnSync("git", ["status", "--porcelain", "--", "proto/src/gen"], {
    cwd: root,
    encoding: "utf8",
  });
  const useGit = git.status === 0;
  const before = useGit ? git.stdout : treeHash(gen);
  if (!run(bin("buf"), ["generate"])) return false;
  const after = useGit
    ? spawnSync("git", ["status", "--porcelain", "--", "proto/src/gen"], { cwd: root, encoding: "utf8" })
        .stdout
    : treeHash(gen);
  // With git: generated code must match what is committed. Without git: generating must change nothing.
  const stale = useGit ? after.trim() !== "" : before !== after;
  if (stale) {
    process.stderr.write(
      `generated code in proto/src/gen is stale or uncommitted:\n${useGit ? after : ""}` +
        "run `npx buf generate` and commit proto/src/gen\n",
    );
  }
  return !stale;
});
step("build", () => run(process.execPath, [join(root, "scripts/build.mjs")]));

// vitest: every suite; its own counts come from the JSON report.
process.stdout.write("\n=== vitest\n");
const resultsDir = join(root, ".test-results");
const report = join(resultsDir, "vitest.json");
mkdirSync(resultsDir, { recursive: true });
rmSync(report, { force: true });
const vitestOk = run(bin("vitest"), [
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile.json=${report}`,
]);
let counted = false;
if (existsSync(report)) {
  try {
    const json = JSON.parse(readFileSync(report, "utf8"));
    passed += json.numPassedTests ?? 0;
    failed += json.numFailedTests ?? 0;
    if ((json.numFailedTests ?? 0) > 0) failures.push(`vitest (${json.numFailedTests} tests)`);
    // A suite that fails to load has no tests to count; count it as one failure.
    const brokenSuites = (json.testResults ?? []).filter(
      (s) => s.status === "failed" && (s.assertionResults ?? []).every((a) => a.status !== "failed"),
    );
    for (const s of brokenSuites) {
      failed++;
      failures.push(`suite ${relative(root, s.name)}`);
    }
    counted = true;
  } catch (e) {
    process.stderr.write(`cannot read ${report}: ${e.message}\n`);
  }
}
if (!counted || (!vitestOk && failures.every((f) => !f.startsWith("vitest") && !f.startsWith("suite")))) {
  // vitest itself failed (crash, global setup) without reporting a failed test.
  failed++;
  failures.push("vitest run");
}

step("leak check", () =>
  run(process.execPath, ["--conditions=source", "--import", "tsx", join(root, "test/leak-check.ts")]),
);

if (failures.length > 0) process.stdout.write(`\nfailed: ${failures.join(", ")}\n`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed > 0 ? 1 : 0);
