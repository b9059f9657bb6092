import { readFileSync } from "node:fs";
import { parse as parseYaml, YAMLParseError } from "yaml";

/**
 * The one server configuration shared by every bhatti process.
 *
 * Precedence, lowest first: built-in default, the YAML file
 * (`/etc/bhatti/config.yaml`, or `--config` / `BHATTI_CONFIG_FILE`),
 * environment variables (`BHATTI_<KEY>`), command-line flags (`--<key-with-dashes>`).
 * Every key is declared once in `configKeys` with its default and documentation;
 * an unknown key anywhere is an error, never silently ignored.
 */

type KeyType = "string" | "integer" | "boolean" | "duration" | "list" | "enum";

interface KeySpec<T> {
  readonly type: KeyType;
  readonly default: T;
  readonly doc: string;
  readonly choices?: readonly string[];
  /** Turns a raw value (from YAML, env or a flag) into T, or throws a message. */
  readonly parse: (raw: unknown) => T;
}

export const stringKey = (def: string, doc: string): KeySpec<string> => ({
  type: "string",
  default: def,
  doc,
  parse(raw) {
    if (typeof raw === "string" && raw.length > 0) return raw;
    if (typeof raw === "number") return String(raw);
    throw new Error("expected a non-empty string");
  },
});

/** A string that must match `pattern` (names the product creates on the host). */
export const patternKey = (def: string, pattern: RegExp, doc: string): KeySpec<string> => ({
  type: "string",
  default: def,
  doc,
  parse(raw) {
    if (typeof raw === "string" && pattern.test(raw)) return raw;
    throw new Error(`expected a string matching ${pattern.source}`);
  },
});

export const integerKey = (
  def: number,
  doc: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): KeySpec<number> => ({
  type: "integer",
  default: def,
  doc,
  parse(raw) {
    const n = typeof raw === "string" && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (typeof n === "number" && Number.isInteger(n) && n >= min && n <= max) return n;
    throw new Error(`expected an integer between ${min} and ${max}`);
  },
});

export const booleanKey = (def: boolean, doc: string): KeySpec<boolean> => ({
  type: "boolean",
  default: def,
  doc,
  parse(raw) {
    if (typeof raw === "boolean") return raw;
    if (raw === "true" || raw === "1" || raw === "yes") return true;
    if (raw === "false" || raw === "0" || raw === "no") return false;
    throw new Error("expected true or false");
  },
});

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "500ms", "30s", "30m", "2h" or a bare number of milliseconds. */
export function parseDurationMs(raw: unknown): number {
  if (typeof raw === "number" && Number.isFinite(raw) && raw >= 0) return raw;
  if (typeof raw === "string") {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
    if (m?.[1] !== undefined) return Math.round(Number(m[1]) * (durationUnits[m[2] ?? "ms"] ?? 1));
  }
  throw new Error('expected a duration such as "500ms", "30s", "30m" or "2h"');
}

export const durationKey = (def: string, doc: string): KeySpec<number> => ({
  type: "duration",
  default: parseDurationMs(def),
  doc: `${doc} (default ${def})`,
  parse: parseDurationMs,
});

export const listKey = (def: readonly string[], doc: string): KeySpec<readonly string[]> => ({
  type: "list",
  default: def,
  doc,
  parse(raw) {
    if (Array.isArray(raw) && raw.every((v) => typeof v === "string")) return raw as string[];
    if (typeof raw === "string") {
      return raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    }
    throw new Error("expected a list of strings (YAML list, or comma-separated)");
  },
});

export const enumKey = <const C extends readonly string[]>(
  choices: C,
  def: C[number],
  doc: string,
): KeySpec<C[number]> => ({
  type: "enum",
  default: def,
  doc,
  choices,
  parse(raw) {
    if (typeof raw === "string" && (choices as readonly string[]).includes(raw)) return raw as C[number];
    throw new Error(`expected one of: ${choices.join(", ")}`);
  },
});

/** Every configuration key. Add new keys here (with a doc line); docs/configuration.md is generated from it. */
export const configKeys = {
  socket_dir: stringKey("/run/bhatti", "Directory holding each process's Unix socket (`<name>.sock`)."),
  state_dir: stringKey("/var/lib/bhatti", "Directory holding the database, images and sandboxes."),
  listen: stringKey(
    "127.0.0.1:8080",
    "Address (host:port) on which the gateway serves REST, WebSocket and Connect.",
  ),
  proxy_zone: stringKey(
    "localhost",
    "DNS zone of preview URLs: a request whose Host is `<alias>.<proxy_zone>` goes to that published port (on the gateway's listener and on `proxy_listen`). `localhost` works in browsers with no DNS.",
  ),
  proxy_mode: enumKey(
    ["domain", "path"] as const,
    "domain",
    "Which preview URL `publish` returns: `domain` (`http(s)://<alias>.<proxy_zone>:<port>/`) or `path` (`http(s)://<proxy_listen>/<alias>/`, for hosts without wildcard DNS; needs `proxy_listen`). Both are always served.",
  ),
  proxy_listen: stringKey(
    "",
    "Address (host:port) of a separate public listener that serves only published ports (domain and path mode), never the API; empty = none.",
  ),
  proxy_public_host: stringKey(
    "",
    "Host[:port] that preview URLs use instead of the listen address (e.g. a public name in front of `proxy_listen`); empty = the listen address.",
  ),
  proxy_tls: booleanKey(
    false,
    "Serve `proxy_listen` over HTTPS: with `proxy_tls_cert`/`proxy_tls_key`, or else a self-signed wildcard certificate for `*.<proxy_zone>` generated once with openssl into `<state_dir>/proxy-tls/`.",
  ),
  proxy_tls_cert: stringKey("", "PEM certificate chain (a wildcard for `*.<proxy_zone>`) for `proxy_tls`."),
  proxy_tls_key: stringKey("", "PEM private key of `proxy_tls_cert`."),
  proxy_rate_ip_burst: integerKey(
    500,
    "Proxied requests one client address may make at once (v1: 500); then 429 with Retry-After.",
    1,
    10_000_000,
  ),
  proxy_rate_ip_per_minute: integerKey(
    1500,
    "Refill rate of each client address's proxy bucket.",
    1,
    100_000_000,
  ),
  proxy_rate_alias_burst: integerKey(
    2000,
    "Proxied requests one published alias may receive at once (v1: 2000); then 429 with Retry-After.",
    1,
    10_000_000,
  ),
  proxy_rate_alias_per_minute: integerKey(5000, "Refill rate of each alias's proxy bucket.", 1, 100_000_000),
  proxy_idle_timeout: durationKey(
    "10m",
    "A proxied request or WebSocket with no traffic either way for this long is closed.",
  ),
  log_level: enumKey(
    ["debug", "info", "warn", "error"] as const,
    "info",
    "Lowest level written to the logs.",
  ),
  engine: enumKey(["gvisor", "firecracker"] as const, "gvisor", "Isolation engine that runs sandboxes."),
  runsc_path: stringKey(
    "/usr/local/lib/bhatti/runsc",
    "gVisor runsc binary used by the gvisor engine (installed by scripts/install-runsc.sh).",
  ),
  agent_package_dir: stringKey(
    "/usr/local/lib/bhatti/agent",
    "Read-only agent package (tini, Node, agent bundle) mounted at /.bhatti in every sandbox.",
  ),
  create_template_images: listKey(
    ["minimal"],
    "Images whose sandboxes are created by restoring a per-image template checkpoint (built by the vmm in the background; docs/templates.md) instead of booting; empty = always boot.",
  ),
  create_pool_size: integerKey(
    2,
    "Sandboxes the vmm keeps booted ahead of time, in all (docs/templates.md, the ready pool): after a user creates a sandbox of a `create_template_images` image with the default shape, one is made for that user's next such create, which then only claims it. Each holds memory like an idle sandbox (frozen, no CPU). 0 = no pool.",
    0,
    64,
  ),
  create_pool_idle: durationKey(
    "10m",
    "How long a ready-pool sandbox nobody claimed is kept; the user's demand is forgotten with it.",
  ),
  default_image: stringKey("minimal", "Image of sandboxes created without one (see `bhatti image list`)."),
  cgroup_parent: stringKey(
    "bhatti",
    "Parent cgroup of every sandbox, in each v1 hierarchy and in the v2 `unified` one.",
  ),
  vmm_warm_method: enumKey(
    ["freeze", "runsc"] as const,
    "freeze",
    "How the vmm pauses (warm): the v2 cgroup freezer (measured faster) or `runsc pause`.",
  ),
  vmm_local_network: stringKey(
    "none",
    'Tests/development only: "netns=<host netns>,bridge=<name>,subnet=<a.b.c>" makes the vmm wire sandboxes itself instead of asking the network service; "none" = use the network service.',
  ),
  vmm_orphan_grace: durationKey(
    "5m",
    "How long the vmm waits before it settles what a crash left: destroys an engine sandbox that has no store row, deletes a `creating` row the engine never finished, finishes a `destroying` row. Must exceed the gateway's create deadline (3 min)",
  ),
  runsc_platform: enumKey(
    ["ptrace", "systrap"] as const,
    "ptrace",
    "gVisor platform; ptrace measured fastest on PVM hosts where KVM is unusable (docs/engines.md).",
  ),
  rpc_timeout: durationKey("30s", "Default deadline of a call between bhatti processes"),
  agent_op_timeout: durationKey(
    "30s",
    "How long the gateway waits for a sandbox's agent to answer a request (listing, stat, file header, write acknowledgement, session start); past it the request fails with 504. Commands have their own timeout",
  ),
  shutdown_timeout: durationKey(
    "30s",
    "How long a process waits for in-flight work on SIGTERM before exiting",
  ),
  client_config_file: stringKey(
    "/root/.bhatti/config.yaml",
    "Where the store writes the first admin's `api_url` and `auth_token` on first start (mode 0600, parent 0700).",
  ),
  event_retention: durationKey("2160h", "How long the store keeps events before pruning them (90 days)"),
  metrics_retention: durationKey("720h", "How long the store keeps metrics snapshots (30 days)"),
  metrics_interval: durationKey("60s", "How often the store records a metrics snapshot"),
  network_pool: stringKey(
    "10.201.0.0/16",
    "IPv4 CIDR (a /8 to /24 on a /24 boundary) from which each user gets a /24 by subnet index (index 1 = the first /24); the bridge gateway is .1, sandboxes get .2 to .254.",
  ),
  network_nft_table: patternKey(
    "bhatti",
    /^[a-z][a-z0-9_]{0,31}$/,
    "Name of the network service's own nftables tables (`inet` and `bridge` families); tests use their own.",
  ),
  network_link_prefix: patternKey(
    "bh",
    /^[a-z]{2}$/,
    "Two letters that start the network devices the product creates: `<p>br<n>` bridges, `<p>v…` veths, `<p>tap…` TAPs; reconciliation only touches devices with this prefix. Tests use `bt`.",
  ),
  network_netns_prefix: patternKey(
    "bhatti-",
    /^[a-z][a-z0-9-]{0,15}$/,
    "Prefix of the sandboxes' network namespaces under /run/netns (`<prefix><sandbox id>`). Tests use `bt-…`.",
  ),
  backup_dir: stringKey(
    "",
    "Directory where the admin Backup writes database copies (created 0700); empty = `<state_dir>/backups`. Backups outside it are refused.",
  ),
  thermal_warm_after: durationKey(
    "30s",
    "Idle time after which a hot sandbox is paused (warm); keep_hot and attached interactive clients prevent it",
  ),
  thermal_cold_after: durationKey(
    "30m",
    "Time a sandbox stays warm (paused) before it is checkpointed to disk (cold)",
  ),
  thermal_tick: durationKey("10s", "How often the thermal service reviews every sandbox"),
  thermal_max_cold_wakes: integerKey(
    10,
    "Cold wakes (restores) allowed at once; more get 503 with Retry-After until one finishes. One user holds at most half of them (at least one), so others can still wake theirs.",
    1,
    1000,
  ),
  rate_unauthenticated_burst: integerKey(
    120,
    "Requests without an already-verified API key (none, malformed, or one the store must check) that one client address may make at once; then 429 with Retry-After.",
    1,
    1_000_000,
  ),
  rate_unauthenticated_per_minute: integerKey(
    600,
    "Refill rate of each client address's bucket for requests without an already-verified API key.",
    1,
    10_000_000,
  ),
  rate_lifecycle_burst: integerKey(
    10,
    "Lifecycle operations (stop, start, destroy, PATCH keep_hot) one user may make at once (at least the user's creates_per_minute); then 429 with Retry-After.",
    1,
    1_000_000,
  ),
  rate_lifecycle_per_minute: integerKey(
    20,
    "Refill rate of each user's lifecycle bucket (at least the user's creates_per_minute).",
    1,
    10_000_000,
  ),
  shutdown_policy: enumKey(
    ["leave", "snapshot"] as const,
    "leave",
    "What SIGTERM of `bhatti serve` does to sandboxes: `leave` them running for the next start to adopt, or `snapshot` every running one to cold (in parallel) first.",
  ),
  default_disk_size_mb: integerKey(
    4096,
    "Disk of a sandbox created without `disk_size_mb`, MiB: a sparse ext4 image holding its writable layer; writes past it get ENOSPC.",
    64,
    1_048_576,
  ),
  host_memory_reserve_mb: integerKey(
    1024,
    "Host memory the vmm never commits to sandboxes, MiB: a create or restore whose memory limit does not fit in MemTotal (or MemAvailable) minus this is refused with 503.",
    0,
    1_048_576,
  ),
  host_disk_reserve_mb: integerKey(
    2048,
    "Free space the vmm keeps on the state disk, MiB: a create (needing its whole disk), restore or checkpoint (needing the memory limit) that would eat into it is refused.",
    0,
    1_048_576,
  ),
  volume_min_size_mb: integerKey(
    16,
    "Smallest volume, MiB (`bhatti volume create --size`): ext4's own metadata needs a few MiB of it.",
    8,
    1_048_576,
  ),
  volume_max_size_mb: integerKey(
    1_048_576,
    "Largest volume, MiB (create and resize); the user's `max_volume_storage_mb` caps the sum of their volumes.",
    8,
    16_777_216,
  ),
  dns_upstreams: listKey(
    [],
    "DNS servers (IPv4, optional `:port`) the per-user resolvers forward to; empty = the public nameservers in /etc/resolv.conf (loopback, link-local and private ones are skipped: they would answer host-internal names to every tenant), else 1.1.1.1 and 8.8.8.8.",
  ),
  forward_bind_address: stringKey(
    "127.0.0.1",
    "Address the gateway binds host forwards (`bhatti forward`) on. Loopback by default: a forward has no authentication of its own, so anyone who can reach the port reaches the sandbox's service; bind wider only on a trusted network.",
  ),
  rate_share_per_minute: integerKey(
    60,
    "Share-link page loads and WebSocket connections one client address may make per minute (the burst is the same number); then 429.",
    1,
    1_000_000,
  ),
  image_task_timeout: durationKey(
    "30m",
    "How long an image pull, import or save may run before the vmm kills it (the task fails and nothing is kept).",
  ),
  image_upload_max_mb: integerKey(
    10240,
    "Largest tar `POST /images/import` (and `bhatti image import`) accepts as a request body, MiB.",
    1,
    1_048_576,
  ),
} as const;

export type ConfigKey = keyof typeof configKeys;
type ValueOf<S> = S extends KeySpec<infer T> ? T : never;
export type ServerConfig = { readonly [K in ConfigKey]: ValueOf<(typeof configKeys)[K]> };

export const DEFAULT_CONFIG_FILE = "/etc/bhatti/config.yaml";

/** A configuration problem; the message names the key or the file. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export interface LoadConfigOptions {
  /** Command-line arguments after the program name (flags like `--state-dir /x` or `--config f`). */
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
}

export interface LoadedConfig {
  config: ServerConfig;
  /** The file that was read, if any. */
  file: string | undefined;
  /** Arguments that were not configuration flags, in order. */
  rest: string[];
}

const keyNames = Object.keys(configKeys) as ConfigKey[];

function isConfigKey(name: string): name is ConfigKey {
  return Object.hasOwn(configKeys, name);
}

export function envNameOf(key: ConfigKey): string {
  return `BHATTI_${key.toUpperCase()}`;
}

export function flagNameOf(key: ConfigKey): string {
  return `--${key.replaceAll("_", "-")}`;
}

function parseValue(key: ConfigKey, raw: unknown, source: string): unknown {
  try {
    return configKeys[key].parse(raw);
  } catch (e) {
    throw new ConfigError(`${source}: invalid value for "${key}": ${(e as Error).message}`);
  }
}

/**
 * Splits argv into config flags and the rest. Accepts `--flag value` and `--flag=value`;
 * `--config FILE` names the YAML file.
 */
function splitFlags(argv: readonly string[]): {
  flags: Map<ConfigKey, string>;
  configFile?: string;
  rest: string[];
} {
  const flags = new Map<ConfigKey, string>();
  const rest: string[] = [];
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--")) {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = (eq === -1 ? arg.slice(2) : arg.slice(2, eq)).replaceAll("-", "_");
    if (name !== "config" && !isConfigKey(name)) {
      rest.push(arg);
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined) throw new ConfigError(`flag ${arg} needs a value`);
    if (name === "config") configFile = value;
    else if (isConfigKey(name)) flags.set(name, value);
  }
  return configFile === undefined ? { flags, rest } : { flags, configFile, rest };
}

function readConfigFile(path: string, required: boolean): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !required) return {};
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` (line ${e.linePos[0].line})` : "";
    throw new ConfigError(
      `config file ${path} is not valid YAML${where}: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(`config file ${path} must be a mapping of keys to values`);
  }
  return doc as Record<string, unknown>;
}

/** Loads the configuration from defaults, the YAML file, the environment and flags. */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const { flags, configFile, rest } = splitFlags(options.argv ?? []);
  const explicitFile = configFile ?? env["BHATTI_CONFIG_FILE"];
  const file = explicitFile ?? DEFAULT_CONFIG_FILE;
  const fromFile = readConfigFile(file, explicitFile !== undefined);

  const values: Record<string, unknown> = {};
  for (const key of keyNames) values[key] = configKeys[key].default;
  for (const [name, raw] of Object.entries(fromFile)) {
    if (!isConfigKey(name)) {
      throw new ConfigError(
        `config file ${file}: unknown key "${name}" (known keys: ${keyNames.join(", ")})`,
      );
    }
    values[name] = parseValue(name, raw, `config file ${file}`);
  }
  for (const key of keyNames) {
    const raw = env[envNameOf(key)];
    if (raw !== undefined && raw !== "") values[key] = parseValue(key, raw, `environment ${envNameOf(key)}`);
  }
  for (const [key, raw] of flags) values[key] = parseValue(key, raw, `flag ${flagNameOf(key)}`);

  const fileRead = Object.keys(fromFile).length > 0 || explicitFile !== undefined ? file : undefined;
  return { config: values as ServerConfig, file: fileRead, rest };
}

export interface ConfigToFlagsOptions {
  /**
   * Only keys whose value differs from the default. A child started with these flags,
   * `--config=/dev/null` and no `BHATTI_<KEY>` variables gets exactly this config.
   */
  changedOnly?: boolean;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i]);
  return a === b;
}

/** The configuration as flags, so a supervisor can hand its resolved config to children. */
export function configToFlags(config: ServerConfig, options: ConfigToFlagsOptions = {}): string[] {
  const out: string[] = [];
  for (const key of keyNames) {
    const value = config[key];
    if (options.changedOnly === true && sameValue(value, configKeys[key].default)) continue;
    out.push(`${flagNameOf(key)}=${Array.isArray(value) ? value.join(",") : String(value)}`);
  }
  return out;
}

/** Markdown reference of every key; docs/configuration.md is this text. */
export function renderConfigReference(): string {
  const lines = [
    "# Configuration reference",
    "",
    "<!-- Generated from packages/runtime/src/config.ts by `npm run docs:config`; do not edit by hand. -->",
    "",
    `Every bhatti process reads one YAML file, \`${DEFAULT_CONFIG_FILE}\` unless \`--config FILE\` or`,
    "`BHATTI_CONFIG_FILE` names another. Each key can be overridden by an environment variable and by a",
    "command-line flag; flags win over the environment, which wins over the file. Unknown keys are an error.",
    "Durations take `ms`, `s`, `m` or `h` suffixes; a bare number is milliseconds.",
    "",
    "| key | type | default | env | flag | meaning |",
    "|---|---|---|---|---|---|",
  ];
  for (const key of keyNames) {
    const spec = configKeys[key] as KeySpec<unknown>;
    const type = spec.choices ? spec.choices.join(" \\| ") : spec.type;
    const def = Array.isArray(spec.default) ? spec.default.join(",") : String(spec.default);
    const shown = spec.type === "duration" ? `${def} ms` : def;
    lines.push(
      `| \`${key}\` | ${type} | \`${shown}\` | \`${envNameOf(key)}\` | \`${flagNameOf(key)}\` | ${spec.doc} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}
