import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxInfo } from "@bhatti/service-vmm/engine";
import { createTierEnv, noLeaks, reportSkip, type TierEnv } from "./tier-harness.js";

// Playwright inside the browser tier: Node 22 + the global playwright-core launch Debian's
// Chromium (the link in ~/.cache/ms-playwright, no executablePath, no download) under gVisor.
const skip = reportSkip("browser");

const PAGE = `data:text/html,<title>bhatti browser tier</title><input id=name><p id=out></p><script>document.getElementById("name").addEventListener("input",e=>{document.getElementById("out").textContent="hello "+e.target.value})</script>`;

const SCRIPT = `import { chromium } from "playwright-core";
const browser = await chromium.launch();
const page = await browser.newPage();
await page.goto(${JSON.stringify(PAGE)});
await page.fill("#name", "gvisor");
console.log(JSON.stringify({ title: await page.title(), out: await page.textContent("#out"), version: browser.version() }));
await browser.close();
`;

const SPEC = `import { test, expect } from "@playwright/test";
test("the page reacts", async ({ page }) => {
  await page.goto(${JSON.stringify(PAGE)});
  await page.fill("#name", "spec");
  await expect(page.locator("#out")).toHaveText("hello spec");
});
`;

describe.skipIf(skip)("browser tier", () => {
  let t: TierEnv;
  let sb: SandboxInfo;

  beforeAll(async () => {
    t = await createTierEnv("browser");
    sb = await t.create({ memoryMb: 1024, cpus: 2 });
  }, 180_000);

  afterAll(async () => {
    if (!t) return;
    const leaks = await t.dispose();
    expect(leaks).toEqual(noLeaks(leaks));
  }, 120_000);

  it("has Node 22+ on PATH for the sandbox user", async () => {
    const r = await t.sh(sb.id, "node --version; id -un");
    expect(r.exitCode).toBe(0);
    const [version, user] = r.stdout.trim().split("\n");
    expect(Number(/^v(\d+)\./.exec(version ?? "")?.[1])).toBeGreaterThanOrEqual(22);
    expect(user).toBe("lohar");
  });

  it("a playwright-core script launches Chromium, fills an input and reads the page", async () => {
    const client = await t.agent(sb.id);
    try {
      await client.writeFile("/workspace/title.mjs", SCRIPT);
    } finally {
      client.close();
    }
    const r = await t.sh(sb.id, "cd /workspace && node title.mjs");
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { title: string; out: string; version: string };
    console.log(`browser tier: Chromium ${out.version} inside gVisor`);
    expect(out.title).toBe("bhatti browser tier");
    expect(out.out).toBe("hello gvisor");
  }, 120_000);

  it("npx playwright test runs a spec with the tier's Chromium", async () => {
    expect((await t.sh(sb.id, "mkdir -p /workspace/pw")).exitCode).toBe(0);
    const client = await t.agent(sb.id);
    try {
      await client.writeFile("/workspace/pw/page.spec.mjs", SPEC);
    } finally {
      client.close();
    }
    const r = await t.sh(sb.id, "cd /workspace/pw && npx playwright test --reporter=line 2>&1");
    expect(r.stdout).toContain("1 passed");
    expect(r.exitCode).toBe(0);
  }, 180_000);
});
