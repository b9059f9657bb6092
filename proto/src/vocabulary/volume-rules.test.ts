import { describe, expect, it } from "vitest";
import { normalizeVolumeMount, parseSizeMb, parseVolumeFlag, volumeMountProblem } from "./volume-rules.js";

describe("volume rules", () => {
  it("sizes: M, G, T and plain MiB; nothing fractional below 1 MiB, nothing else", () => {
    expect(parseSizeMb("512M")).toBe(512);
    expect(parseSizeMb("1G")).toBe(1024);
    expect(parseSizeMb("10g")).toBe(10240);
    expect(parseSizeMb("1.5G")).toBe(1536);
    expect(parseSizeMb("64MiB")).toBe(64);
    expect(parseSizeMb("2048")).toBe(2048);
    expect(parseSizeMb("1T")).toBe(1024 * 1024);
    for (const bad of ["", "0", "0G", "-1G", "1.5M", "1K", "G", "1 G B", "abc", "1e3"]) {
      expect(parseSizeMb(bad), bad).toBeUndefined();
    }
  });

  it("mount paths: absolute, not /, not in or under system directories", () => {
    for (const ok of ["/data", "/home/user/work", "/workspace/cache", "/opt/x", "/var/data", "/etcetera"]) {
      expect(volumeMountProblem(ok), ok).toBeUndefined();
    }
    for (const bad of [
      "",
      "data",
      "/",
      "//",
      "/proc",
      "/proc/1",
      "/etc",
      "/etc/ssh",
      "/usr/local",
      "/tmp/x",
      "/dev",
      "/run/user",
      "/.bhatti",
      "/.bhatti-boot/x",
      "/a/../etc",
      "/a/./b",
      "/a:b",
      "/a,b",
      "/a\nb",
    ]) {
      expect(volumeMountProblem(bad), JSON.stringify(bad)).toBeTypeOf("string");
    }
    expect(normalizeVolumeMount("//data//x/")).toBe("/data/x");
  });

  it("--volume NAME:/path[:ro]", () => {
    expect(parseVolumeFlag("data:/data")).toEqual({ name: "data", mount: "/data", readOnly: false });
    expect(parseVolumeFlag("data:/data:ro")).toEqual({ name: "data", mount: "/data", readOnly: true });
    expect(parseVolumeFlag("data:/data:rw")).toEqual({ name: "data", mount: "/data", readOnly: false });
    for (const bad of ["data", ":/data", "data:/data:xx", "a:b:c:d"]) {
      expect(parseVolumeFlag(bad), bad).toHaveProperty("error");
    }
  });
});
