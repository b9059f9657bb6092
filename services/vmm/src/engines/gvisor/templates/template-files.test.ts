import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type TemplateManifest,
  readTemplate,
  removeOtherVersions,
  sweepTemplateTemps,
  templateKey,
  templatePaths,
} from "./template-files.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bhatti-test-templates-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fixture() {
  const imageDir = join(dir, "images", "busybox");
  mkdirSync(join(imageDir, "rootfs"), { recursive: true });
  writeFileSync(join(imageDir, "image.json"), JSON.stringify({ built_at: "a" }));
  const agent = join(dir, "agent.mjs");
  writeFileSync(agent, "agent v1");
  const runsc = join(dir, "runsc");
  writeFileSync(runsc, "runsc");
  const input = {
    imageDir,
    imageRootfs: join(imageDir, "rootfs"),
    agentFiles: [agent],
    runscPath: runsc,
    shape: { cpus: 1, memoryMb: 1024, diskSizeMb: 4096 },
  };
  return { input, imageDir, agent, runsc };
}

function commitFake(root: string, image: string, key: string, files: { checkpoint?: boolean } = {}) {
  const p = templatePaths(root, image, key);
  mkdirSync(join(p.dir, "checkpoint"), { recursive: true });
  if (files.checkpoint !== false) writeFileSync(join(p.checkpoint, "checkpoint.img"), "x");
  writeFileSync(p.disk, "");
  const m: TemplateManifest = {
    version: 1,
    image,
    imageRootfs: "/r",
    key,
    shape: { cpus: 1, memoryMb: 1024, diskSizeMb: 4096 },
    token: "t".repeat(32),
    hostname: "template",
    createdAt: 1,
    buildMs: 1,
  };
  writeFileSync(p.manifest, JSON.stringify(m));
  return p;
}

describe("template version key", () => {
  it("is stable, and changes with the image, the agent package, runsc and the shape", () => {
    const { input, imageDir, agent, runsc } = fixture();
    const k0 = templateKey(input);
    expect(templateKey(input)).toBe(k0);
    expect(k0).toMatch(/^[0-9a-f]{16}$/);

    writeFileSync(join(imageDir, "image.json"), JSON.stringify({ built_at: "b" }));
    const k1 = templateKey(input);
    expect(k1).not.toBe(k0);

    writeFileSync(agent, "agent v2");
    const k2 = templateKey(input);
    expect(k2).not.toBe(k1);

    utimesSync(runsc, new Date(1_000_000), new Date(1_000_000));
    const k3 = templateKey(input);
    expect(k3).not.toBe(k2);

    expect(templateKey({ ...input, shape: { ...input.shape, memoryMb: 2048 } })).not.toBe(k3);
  });
});

describe("template files", () => {
  it("reads a complete template, none for a missing one, and refuses an incomplete one", () => {
    const root = join(dir, "templates");
    expect(readTemplate(templatePaths(root, "busybox", "a".repeat(16)))).toBeUndefined();
    const ok = commitFake(root, "busybox", "b".repeat(16));
    expect(readTemplate(ok)?.token).toBe("t".repeat(32));
    const broken = commitFake(root, "busybox", "c".repeat(16), { checkpoint: false });
    expect(() => readTemplate(broken)).toThrow(/checkpoint image is missing/);
    writeFileSync(ok.manifest, "{not json");
    expect(() => readTemplate(ok)).toThrow(/manifest unreadable/);
  });

  it("sweeps unfinished builds and removes every version but the current one", () => {
    const root = join(dir, "templates");
    commitFake(root, "busybox", "old1");
    commitFake(root, "busybox", "old2");
    commitFake(root, "busybox", "keep");
    mkdirSync(join(root, "busybox", "half.tmp"), { recursive: true });
    mkdirSync(join(root, ".work", "abc"), { recursive: true });
    expect(sweepTemplateTemps(root)).toEqual(["busybox/half.tmp"]);
    expect(removeOtherVersions(root, "busybox", "keep").sort()).toEqual(["busybox/old1", "busybox/old2"]);
    expect(readTemplate(templatePaths(root, "busybox", "keep"))?.key).toBe("keep");
    expect(readTemplate(templatePaths(root, "busybox", "old1"))).toBeUndefined();
  });
});
