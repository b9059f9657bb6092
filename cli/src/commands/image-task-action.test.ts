import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { credentialsFromAuthFile, registryOf, runImageImport } from "./image-task-action.js";

describe("image pull/import helpers", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-cli-image-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("--authfile: the credentials of the reference's registry from a Docker config.json", () => {
    const file = join(dir, "config.json");
    writeFileSync(
      file,
      JSON.stringify({
        auths: {
          "127.0.0.1:5000": { auth: Buffer.from("tester:s3cret").toString("base64") },
          "https://index.docker.io/v1/": { username: "hub", password: "tok" },
        },
      }),
    );
    expect(registryOf("127.0.0.1:5000/bt/x:1")).toBe("127.0.0.1:5000");
    expect(registryOf("python:3.12")).toBe("docker.io");
    expect(credentialsFromAuthFile(file, "127.0.0.1:5000")).toBe("tester:s3cret");
    expect(credentialsFromAuthFile(file, "docker.io")).toBe("hub:tok");
    expect(() => credentialsFromAuthFile(file, "ghcr.io")).toThrow(/no credentials for ghcr.io/);
  });

  it("--from-docker without docker on PATH is a clear error, before any request", async () => {
    const path = process.env["PATH"];
    process.env["PATH"] = join(dir, "empty");
    try {
      await expect(runImageImport({}, undefined, { fromDocker: "app:latest" })).rejects.toThrow(
        /docker is not installed/,
      );
    } finally {
      process.env["PATH"] = path;
    }
    await expect(runImageImport({}, "a.tar", { fromDocker: "x" })).rejects.toThrow(/not both/);
  });
});
