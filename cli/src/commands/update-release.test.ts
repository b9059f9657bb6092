import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildTiers,
  currentRelease,
  flipLink,
  previousRelease,
  recordPrevious,
  smokeTest,
} from "./update-release.js";

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));

// The release steps on real directories: this repository's build (test/global-setup.ts builds
// it) as a good release, a copy with a broken bundle as a bad one, the busybox tier script.
describe("update release steps", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "bhatti-test-release-"));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("the smoke test passes for a built release and names what is broken in a bad one", async () => {
    expect(await smokeTest(repoRoot)).toMatch(/^\d+\.\d+\.\d+/);
    const bad = join(tmp, "bad");
    for (const part of [
      "package.json",
      "cli/dist",
      "gateway/dist",
      "services/store/dist",
      "services/network/dist",
      "services/vmm/dist",
      "services/thermal/dist",
    ]) {
      cpSync(join(repoRoot, part), join(bad, part), { recursive: true });
    }
    symlinkSync(join(repoRoot, "node_modules"), join(bad, "node_modules"));
    writeFileSync(join(bad, "services/vmm/dist/main.js"), "this is not javascript (\n");
    await expect(smokeTest(bad)).rejects.toThrow(/node --check .*services\/vmm\/dist\/main\.js/);
  }, 120_000);

  it("flips the link in one rename and remembers the previous release", () => {
    const a = join(tmp, "a");
    const b = join(tmp, "b");
    mkdirSync(join(a, "cli/dist"), { recursive: true });
    mkdirSync(join(b, "cli/dist"), { recursive: true });
    writeFileSync(join(a, "cli/dist/bhatti.mjs"), "");
    writeFileSync(join(b, "cli/dist/bhatti.mjs"), "");
    const link = join(tmp, "opt-bhatti");
    const releases = join(tmp, "releases");
    mkdirSync(releases);
    symlinkSync(a, link);
    expect(currentRelease(link)).toBe(a);
    expect(previousRelease(releases)).toBeUndefined();
    recordPrevious(releases, a);
    flipLink(link, b);
    expect(readlinkSync(link)).toBe(b);
    expect(previousRelease(releases)).toBe(a);
    // No temporary link is left beside it.
    expect(existsSync(`${link}.update-${process.pid}`)).toBe(false);
    expect(() => currentRelease(a)).toThrow(/not a symlink/);
  });

  it("builds the tiers asked for with the release's images/*/build.sh and refuses unknown ones", async () => {
    const state = join(tmp, "state");
    const log: string[] = [];
    expect(await buildTiers(repoRoot, "busybox", state, (l) => log.push(l))).toEqual(["busybox"]);
    expect(existsSync(join(state, "images/busybox/image.json"))).toBe(true);
    expect(log).toEqual(["tier busybox"]);
    await expect(buildTiers(repoRoot, "busybox,nosuch", state, () => undefined)).rejects.toThrow(
      /no such tier: nosuch/,
    );
  }, 120_000);
});
