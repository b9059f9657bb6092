import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TaskFailure } from "./image-tasks.js";
import { injectAgentNeeds } from "./rootfs-inject.js";

describe("injectAgentNeeds", () => {
  let dir: string;
  let root: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-inject-"));
    root = join(dir, "rootfs");
    mkdirSync(root);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("adds lohar (uid 1000) to an image without one, with its home and /workspace owned by it", () => {
    mkdirSync(join(root, "etc"));
    writeFileSync(
      join(root, "etc/passwd"),
      "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false",
    );
    expect(injectAgentNeeds(root)).toBe("lohar");
    const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
    expect(passwd).toBe(
      "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\nlohar:x:1000:1000:lohar:/home/lohar:/bin/sh\n",
    );
    expect(readFileSync(join(root, "etc/group"), "utf8")).toBe("root:x:0:\nlohar:x:1000:\n");
    for (const d of ["home/lohar", "workspace"]) expect(statSync(join(root, d)).uid).toBe(1000);
    expect(statSync(join(root, "tmp")).mode & 0o7777).toBe(0o1777);
  });

  it("keeps an existing uid 1000 user (e.g. node) and its home", () => {
    mkdirSync(join(root, "etc"));
    writeFileSync(
      join(root, "etc/passwd"),
      "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
    );
    writeFileSync(join(root, "etc/group"), "root:x:0:\nnode:x:1000:\n");
    expect(injectAgentNeeds(root)).toBe("node");
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).not.toMatch(/lohar/);
    expect(statSync(join(root, "home/node")).uid).toBe(1000);
  });

  it("an empty image (distroless scratch) gets root and lohar", () => {
    expect(injectAgentNeeds(root)).toBe("lohar");
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toMatch(/^root:x:0:0:.*\nlohar:x:1000:/);
  });

  it("never writes through the image's symlinks: a symlinked /etc fails, a symlinked passwd is replaced", () => {
    const victim = join(dir, "host-etc");
    mkdirSync(victim);
    writeFileSync(join(victim, "passwd"), "host\n");
    symlinkSync(victim, join(root, "etc"));
    expect(() => injectAgentNeeds(root)).toThrow(TaskFailure);
    expect(readFileSync(join(victim, "passwd"), "utf8")).toBe("host\n");
    expect(readdirSync(victim)).toEqual(["passwd"]);

    rmSync(join(root, "etc"));
    mkdirSync(join(root, "etc"));
    symlinkSync(join(victim, "passwd"), join(root, "etc/passwd"));
    symlinkSync(victim, join(root, "workspace"));
    expect(() => injectAgentNeeds(root)).not.toThrow();
    expect(readFileSync(join(victim, "passwd"), "utf8")).toBe("host\n");
    expect(statSync(victim).uid).toBe(0);
    expect(statSync(join(root, "workspace")).isDirectory()).toBe(true);
  });
});
