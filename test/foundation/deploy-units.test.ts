import { execFile } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./serve-harness.js";

const deployDir = join(repoRoot, "deploy");
const units = readdirSync(deployDir).filter((f) => f.endsWith(".service") || f.endsWith(".target"));
const systemdAnalyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((p) => existsSync(p));

describe("systemd units", () => {
  it("has one service per process and a target that wants them all", () => {
    const services = units.filter((u) => u.endsWith(".service")).sort();
    expect(services).toEqual([
      "bhatti-gateway.service",
      "bhatti-network.service",
      "bhatti-store.service",
      "bhatti-thermal.service",
      "bhatti-vmm.service",
    ]);
    const target = readFileSync(join(deployDir, "bhatti.target"), "utf8");
    for (const s of services) expect(target).toContain(s);
  });

  it("starts each process from its bundle under /opt/bhatti (the install's link to this tree)", () => {
    for (const unit of units.filter((u) => u.endsWith(".service"))) {
      const text = readFileSync(join(deployDir, unit), "utf8");
      const script = /^ExecStart=\/usr\/bin\/env node \/opt\/bhatti\/(\S+)$/m.exec(text)?.[1];
      expect(script, unit).toBeDefined();
      expect(existsSync(join(repoRoot, script ?? "")), `${unit}: ${script}`).toBe(true);
      expect(text).toMatch(/^Restart=always$/m);
      // A crash loop never ends in systemd giving up (security review #17).
      expect(text, unit).toMatch(/^StartLimitIntervalSec=0$/m);
      expect(text, unit).not.toMatch(/^StartLimitBurst=/m);
      expect(text).toMatch(/^WantedBy=bhatti\.target$/m);
    }
  });

  it.runIf(systemdAnalyze !== undefined)("passes systemd-analyze verify", async () => {
    const result = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        systemdAnalyze ?? "systemd-analyze",
        ["verify", ...units.map((u) => join(deployDir, u))],
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : 1, output: stdout + stderr }),
      );
    });
    expect(result.output).toBe("");
    expect(result.code).toBe(0);
  });
});
