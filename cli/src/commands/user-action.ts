import { type User, UserService } from "@bhatti/proto/v1/user_pb";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { userJson } from "@bhatti/proto/rest-json";
import { emit, printTable } from "../output.js";
import { confirmDestructive } from "../confirm-destructive.js";

/** A user as REST prints it (`{}` for a missing user, which the services never send). */
function restUser(u: User | undefined): Record<string, unknown> {
  return u === undefined ? {} : userJson(u);
}

/** The command's flags, declared here so the command imports the action (lazily), never the reverse. */
export interface UserLimitFlags {
  maxSandboxes?: number;
  maxCpus?: number;
  maxMemory?: number;
  maxVolumeStorage?: number;
  maxSnapshots?: number;
  maxImages?: number;
  createsPerMinute?: number;
  execsPerMinute?: number;
}

function limitsUpdate(flags: UserLimitFlags) {
  const out: Record<string, number> = {};
  const map: [keyof UserLimitFlags, string][] = [
    ["maxSandboxes", "maxSandboxes"],
    ["maxCpus", "maxCpusPerSandbox"],
    ["maxMemory", "maxMemoryMbPerSandbox"],
    ["maxVolumeStorage", "maxVolumeStorageMb"],
    ["maxSnapshots", "maxSnapshots"],
    ["maxImages", "maxImages"],
    ["createsPerMinute", "createsPerMinute"],
    ["execsPerMinute", "execsPerMinute"],
  ];
  for (const [flag, field] of map) {
    const v = flags[flag];
    if (v !== undefined) out[field] = v;
  }
  return out;
}

function printKey(verb: string, user: User | undefined, apiKey: string): void {
  process.stdout.write(`${verb} user ${user?.name} (${user?.id})\n`);
  process.stdout.write(`api key (shown once, store it now): ${apiKey}\n`);
}

export async function runUserCreate(
  options: GlobalOptions,
  flags: UserLimitFlags & { name: string; admin?: boolean },
): Promise<void> {
  const { client } = createGatewayClient(UserService, options);
  const res = await client.createUser({
    name: flags.name,
    isAdmin: flags.admin === true,
    limits: limitsUpdate(flags),
  });
  emit(options, { ...restUser(res.user), api_key: res.apiKey }, () =>
    printKey("created", res.user, res.apiKey),
  );
}

export async function runUserList(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(UserService, options);
  const { users } = await client.listUsers({});
  // The same objects as REST `GET /users`.
  const rows = users.map((e) => ({ ...restUser(e.user), sandbox_count: e.sandboxCount }));
  emit(options, rows, () =>
    printTable(
      ["NAME", "ID", "ADMIN", "SANDBOXES", "MAX", "CPUS", "MEMORY_MB", "CREATES/MIN", "EXECS/MIN"],
      users.map(({ user: u, sandboxCount }) => {
        const l = u?.limits;
        return [
          u?.name ?? "",
          u?.id ?? "",
          u?.isAdmin ? "yes" : "no",
          String(sandboxCount),
          String(l?.maxSandboxes ?? ""),
          String(l?.maxCpusPerSandbox ?? ""),
          String(l?.maxMemoryMbPerSandbox ?? ""),
          String(l?.createsPerMinute ?? ""),
          String(l?.execsPerMinute ?? ""),
        ];
      }),
    ),
  );
}

export async function runUserRotateKey(options: GlobalOptions, name: string): Promise<void> {
  const { client } = createGatewayClient(UserService, options);
  const res = await client.rotateApiKey({ user: name });
  emit(options, { ...restUser(res.user), api_key: res.apiKey }, () =>
    printKey("rotated the key of", res.user, res.apiKey),
  );
}

export async function runUserLimits(
  options: GlobalOptions,
  name: string,
  flags: UserLimitFlags,
): Promise<void> {
  const { client } = createGatewayClient(UserService, options);
  const res = await client.updateUserLimits({ user: name, limits: limitsUpdate(flags) });
  emit(options, restUser(res.user), () => {
    const l = (restUser(res.user)["limits"] ?? {}) as Record<string, number>;
    process.stdout.write(
      `${res.user?.name}: ${Object.entries(l)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}\n`,
    );
  });
}

export async function runUserDelete(options: GlobalOptions, name: string, yes: boolean): Promise<void> {
  await confirmDestructive(`Delete user ${name}?`, yes);
  const { client } = createGatewayClient(UserService, options);
  await client.deleteUser({ user: name });
  emit(options, { status: "deleted" }, () => process.stdout.write(`deleted user ${name}\n`));
}

export async function runWhoAmI(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(UserService, options);
  const { user } = await client.whoAmI({});
  emit(options, restUser(user), () =>
    process.stdout.write(`${user?.name} (${user?.id})${user?.isAdmin ? " admin" : ""}\n`),
  );
}
