import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
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

describe("client config: the flat-file fast path reads what the YAML parser reads", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bhatti-test-cli-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** What the full YAML parser makes of the file, through the same precedence rules. */
  const viaYaml = (text: string) => {
    const doc = parseYaml(text) as Record<string, unknown> | null;
    const pick = (k: string) => {
      const v = doc?.[k];
      return typeof v === "string" && v !== "" ? v : undefined;
    };
    return { url: (pick("api_url") ?? DEFAULT_GATEWAY_URL).replace(/\/+$/, ""), token: pick("auth_token") };
  };
  const scalar = fc.oneof(
    fc.constantFrom(
      "http://127.0.0.1:8080",
      "https://h.example:1/x/",
      "bht_00ff",
      "null",
      "~",
      "true",
      "12",
      "",
    ),
    fc.string({ unit: fc.constantFrom("a", "b", ":", " ", "#", "'", '"', "\\", "/", "-", "1", "[", "{") }),
  );
  const line = fc.oneof(
    fc
      .tuple(
        fc.constantFrom("api_url", "auth_token", "other"),
        scalar,
        fc.constantFrom("plain", "single", "double"),
      )
      .map(([k, v, q]) => `${k}: ${q === "plain" ? v : q === "single" ? `'${v}'` : `"${v}"`}`),
    fc.constantFrom("", "# comment", "  ", "api_url:", "\r"),
  );

  it("agrees on every generated file the YAML parser accepts", () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 5 }), (lines) => {
        const text = lines.join("\n");
        let expected: ReturnType<typeof viaYaml>;
        try {
          expected = viaYaml(text);
          new URL(expected.url);
        } catch {
          return; // invalid YAML or URL: the error path is covered above
        }
        const file = join(dir, "config.yaml");
        writeFileSync(file, text);
        const got = resolveClientConfig({}, { BHATTI_CLIENT_CONFIG: file });
        expect({ url: got.url, token: got.token }).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });
});
