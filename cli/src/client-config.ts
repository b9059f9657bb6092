import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { CliError } from "./cli-error.js";
import type { GlobalOptions } from "./global-options.js";

export const DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080";

/** Where the CLI finds the gateway and its API key. */
export interface ClientConfig {
  readonly url: string;
  readonly token: string | undefined;
  /** The client config file that was consulted. */
  readonly file: string;
}

/** `$BHATTI_CLIENT_CONFIG`, else `~/.bhatti/config.yaml`. */
export function clientConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env["BHATTI_CLIENT_CONFIG"];
  return override !== undefined && override !== "" ? override : join(homedir(), ".bhatti", "config.yaml");
}

/**
 * The client config as `bhatti setup` writes it: `key: value` lines (plain or simply quoted
 * scalars), blank lines and comments. Undefined for anything else, which goes to the YAML parser.
 * Every command reads this file, and loading the YAML parser is a good part of a command's start.
 */
function parseFlatConfig(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const m =
      /^([A-Za-z_][A-Za-z0-9_]*):[ \t]+(?:"([^"\\]*)"|'([^']*)'|([^\s"'#&*!|>%@`[\]{},][^#]*?))[ \t]*$/.exec(
        line,
      );
    if (m === null || m[1] === undefined || m[1] in out) return undefined;
    const plain = m[4];
    // Plain scalars YAML would read as something else (null, booleans, numbers, nested maps).
    if (plain !== undefined && (/^(?:~|null|true|false|[-+.0-9])/i.test(plain) || plain.includes(": "))) {
      return undefined;
    }
    out[m[1]] = m[2] ?? m[3] ?? plain ?? "";
  }
  return out;
}

function parseYaml(text: string): unknown {
  // Loaded only for a config that is not the flat form (see parseFlatConfig).
  const yaml = createRequire(import.meta.url)("yaml") as typeof import("yaml");
  return yaml.parse(text);
}

function readClientConfigFile(path: string): { api_url?: string; auth_token?: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new CliError(`cannot read client config ${path}: ${(e as Error).message}`);
  }
  let doc: unknown = parseFlatConfig(text);
  try {
    doc ??= parseYaml(text);
  } catch (e) {
    throw new CliError(`client config ${path} is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new CliError(`client config ${path} must be a mapping with api_url and auth_token`);
  }
  const record = doc as Record<string, unknown>;
  const pick = (key: string) => {
    const v = record[key];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const out: { api_url?: string; auth_token?: string } = {};
  const url = pick("api_url");
  const token = pick("auth_token");
  if (url !== undefined) out.api_url = url;
  if (token !== undefined) out.auth_token = token;
  return out;
}

/** Precedence (as in v1): flag > client config file > BHATTI_URL / BHATTI_TOKEN > default. */
export function resolveClientConfig(
  options: GlobalOptions,
  env: NodeJS.ProcessEnv = process.env,
): ClientConfig {
  const file = clientConfigPath(env);
  const fromFile = readClientConfigFile(file);
  const nonEmpty = (v: string | undefined) => (v === undefined || v === "" ? undefined : v);
  const url = nonEmpty(options.url) ?? fromFile.api_url ?? nonEmpty(env["BHATTI_URL"]) ?? DEFAULT_GATEWAY_URL;
  const token = nonEmpty(options.token) ?? fromFile.auth_token ?? nonEmpty(env["BHATTI_TOKEN"]);
  try {
    new URL(url);
  } catch {
    throw new CliError(`invalid gateway URL ${JSON.stringify(url)}`, "pass a URL like http://127.0.0.1:8080");
  }
  return { url: url.replace(/\/+$/, ""), token, file };
}
