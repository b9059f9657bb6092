import { describe, expect, it } from "vitest";
import { ToolError } from "../adapters/tool-process.js";
import { explainSkopeo } from "./image-service.js";
import { defaultImageName, isLoopbackRegistry, parseImageRef, parsePlatform } from "./image-ref.js";

describe("image references", () => {
  it("splits registry, repository and tag as Docker does", () => {
    expect(parseImageRef("python:3.12")).toMatchObject({
      registry: "docker.io",
      repository: "python",
      tag: "3.12",
    });
    expect(parseImageRef("library/debian")).toMatchObject({ registry: "docker.io", tag: "latest" });
    expect(parseImageRef("127.0.0.1:5000/bt/busybox:multi")).toMatchObject({
      registry: "127.0.0.1:5000",
      repository: "bt/busybox",
      tag: "multi",
    });
    expect(parseImageRef(`ghcr.io/o/r@sha256:${"a".repeat(64)}`)).toMatchObject({
      registry: "ghcr.io",
      repository: "o/r",
    });
    for (const bad of ["", "a b", "docker://x", "-x", "a//b"])
      expect(() => parseImageRef(bad)).toThrow(/invalid/);
  });

  it("plain HTTP only for loopback registries", () => {
    for (const r of ["127.0.0.1:5000", "127.9.9.9", "localhost:5000", "localhost", "[::1]:5000"]) {
      expect(isLoopbackRegistry(r), r).toBe(true);
    }
    for (const r of ["docker.io", "10.0.0.1:5000", "128.0.0.1", "localhost.evil.com", "[::2]:5000"]) {
      expect(isLoopbackRegistry(r), r).toBe(false);
    }
  });

  it("default names and platforms", () => {
    expect(defaultImageName(parseImageRef("python:3.12"))).toBe("python-3.12");
    expect(defaultImageName(parseImageRef("ghcr.io/Org/Tool"))).toBe("tool");
    expect(parsePlatform("linux/arm64/v8")).toEqual({ os: "linux", arch: "arm64", variant: "v8" });
    expect(parsePlatform("")).toBeUndefined();
    expect(() => parsePlatform("linux")).toThrow(/os\/arch/);
  });

  it("skopeo failures become short messages without skopeo's log lines", () => {
    const err = (stderr: string) => explainSkopeo(new ToolError("skopeo", 1, stderr), "r/x:1", true).message;
    expect(
      err('time="x" level=fatal msg="Error: reading manifest v1: unauthorized: authentication required"'),
    ).toBe("the registry refused the credentials for r/x:1 (401 unauthorized)");
    expect(err("manifest unknown: manifest unknown")).toBe("image r/x:1 not found in the registry");
    expect(err("http: server gave HTTP response to HTTPS client")).toMatch(/--insecure/);
  });
});
