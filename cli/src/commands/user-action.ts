import { type User, UserService } from "@bhatti/proto/v1/user_pb";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";
import { confirmDestructive } from "../confirm-destructive.js";

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

function userJson(u: User | undefined) {
  if (u === undefined) return undefined;
  const l = u.limits;
  return {
    id: u.id,
    name: u.name,
    is_admin: u.isAdmin,
    subnet_index: u.subnetIndex,
    created_at: u.createdAt ? new Date(Number(u.createdAt.seconds) * 1000).toISOString() : undefined,
    limits: l && {
      max_sandboxes: l.maxSandboxes,
      max_cpus_per_sandbox: l.maxCpusPerSandbox,
      max_memory_mb_per_sandbox: l.maxMemoryMbPerSandbox,
      max_volume_storage_mb: l.maxVolumeStorageMb,
      max_snapshots: l.maxSnapshots,
      max_images: l.maxImages,
      creates_per_minute: l.createsPerMinute,
      execs_per_minute: l.execsPerMinute,
    },
  };
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
  emit(options, { user: userJson(res.user), api_key: res.apiKey }, () =>
    printKey("created", res.user, res.apiKey),
  );
}

export async function runUserList(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(UserService, options);
  const { users } = await client.listUsers({});
  const rows = users.map((e) => ({ ...userJson(e.user), sandboxes: e.sandboxCount }));
  emit(options, rows, () =>
    printTable(
      ["NAME", "ID", "ADMIN", "SANDBOXES", "MAX", "CPUS", "MEMORY_MB", "CREATES/MIN", "EXECS/MIN"],
      rows.map((r) => [
        r.name ?? "",
        r.id ?? "",
        r.is_admin ? "yes" : "no",
        String(r.sandboxes),
        String(r.limits?.max_sandboxes ?? ""),
        String(r.limits?.max_cpus_per_sandbox ?? ""),
        String(r.limits?.max_memory_mb_per_sandbox ?? ""),
        String(r.limits?.creates_per_minute ?? ""),
        String(r.limits?.execs_per_minute ?? ""),
      ]),
    ),
  );
}

export async function runUserRotateKey(options: GlobalOptions, name: string): Promise<void> {
  const { client } = createGatewayClient(UserService, options);
  const res = await client.rotateApiKey({ user: name });
  emit(options, { user: userJson(res.user), api_key: res.apiKey }, () =>
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
  emit(options, userJson(res.user), () => {
    const l = userJson(res.user)?.limits ?? {};
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
  emit(options, { deleted: name }, () => process.stdout.write(`deleted user ${name}\n`));
}

export async function runWhoAmI(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(UserService, options);
  const { user } = await client.whoAmI({});
  emit(options, userJson(user), () =>
    process.stdout.write(`${user?.name} (${user?.id})${user?.isAdmin ? " admin" : ""}\n`),
  );
}
