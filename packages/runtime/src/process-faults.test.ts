import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { UNCAUGHT_EXCEPTION_EXIT_CODE } from "./process-faults.js";

// Each case runs a real Node process that imports the module from source, so the policy is
// observed the way a service sees it: exit codes, signals and what reached stderr.
const here = dirname(fileURLToPath(import.meta.url));

function runScript(body: string, env: Record<string, string> = {}) {
  const script = [
    `import { installProcessFaultPolicy, crashPoint } from ${JSON.stringify(join(here, "index.ts"))};`,
    `import { createLogger } from ${JSON.stringify(join(here, "logger.ts"))};`,
    `const logger = createLogger({ service: "fault-test", level: "info" });`,
    body,
  ].join("\n");
  return spawnSync(
    process.execPath,
    ["--conditions=source", "--import", "tsx", "--input-type=module", "-e", script],
    {
      encoding: "utf8",
      env: { ...process.env, ...env },
      timeout: 30_000,
    },
  );
}

describe("process fault policy", () => {
  it("logs an unhandled rejection and keeps the process serving", () => {
    const r = runScript(
      `installProcessFaultPolicy(logger);
       Promise.reject(new Error("stray"));
       setTimeout(() => { process.stdout.write("still alive\\n"); }, 50);`,
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("still alive");
    expect(r.stdout + r.stderr).toContain("unhandled promise rejection");
    expect(r.stdout + r.stderr).toContain("stray");
  });

  it("logs an uncaught exception and exits with EX_SOFTWARE", () => {
    const r = runScript(
      `installProcessFaultPolicy(logger); setTimeout(() => { throw new Error("boom"); }, 0);`,
    );
    expect(r.status).toBe(UNCAUGHT_EXCEPTION_EXIT_CODE);
    expect(r.stdout + r.stderr).toContain("uncaught exception");
    expect(r.stdout + r.stderr).toContain("boom");
  });
});

describe("crash points", () => {
  it("SIGKILL the process at an armed point and nowhere else", () => {
    const body = `crashPoint("a.b.before"); process.stdout.write("passed before\\n"); crashPoint("a.b.after"); process.stdout.write("passed after\\n");`;
    const armed = runScript(body, { BHATTI_CRASH_AT: "x.y, a.b.after" });
    expect(armed.signal).toBe("SIGKILL");
    expect(armed.stdout).toContain("passed before");
    expect(armed.stdout).not.toContain("passed after");
    expect(armed.stderr).toContain("crash point a.b.after");

    const unarmed = runScript(body);
    expect(unarmed.status).toBe(0);
    expect(unarmed.stdout).toContain("passed after");
  });
});
