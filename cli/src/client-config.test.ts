import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CliError } from "./cli-error.js";
import { DEFAULT_GATEWAY_URL, resolveClientConfig } from "./client-config.js";

describe("client config precedence: flag > file > env > default", () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-cli-"));
    file = join(dir, "config.yaml");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("uses the default URL and no token when nothing is set", () => {
    const c = resolveClientConfig({}, { BHATTI_CLIENT_CONFIG: file });
    expect(c).toEqual({ url: DEFAULT_GATEWAY_URL, token: undefined, file });
  });

  it("prefers the file over the environment, and flags over both", () => {
    const env = { BHATTI_CLIENT_CONFIG: file, BHATTI_URL: "http://env:1", BHATTI_TOKEN: "env-token" };
    expect(resolveClientConfig({}, env)).toMatchObject({ url: "http://env:1", token: "env-token" });
    writeFileSync(file, "api_url: http://file:2/\nauth_token: file-token\n");
    expect(resolveClientConfig({}, env)).toMatchObject({ url: "http://file:2", token: "file-token" });
    expect(resolveClientConfig({ url: "http://flag:3", token: "flag-token" }, env)).toMatchObject({
      url: "http://flag:3",
      token: "flag-token",
    });
  });

  it("names a malformed file and an invalid URL", () => {
    writeFileSync(file, "api_url: [oops\n");
    expect(() => resolveClientConfig({}, { BHATTI_CLIENT_CONFIG: file })).toThrow(CliError);
    expect(() => resolveClientConfig({}, { BHATTI_CLIENT_CONFIG: file })).toThrow(`client config ${file}`);
    writeFileSync(file, "");
    expect(() => resolveClientConfig({ url: "not a url" }, { BHATTI_CLIENT_CONFIG: file })).toThrow(
      'invalid gateway URL "not a url"',
    );
  });
});
