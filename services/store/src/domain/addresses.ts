import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";

export interface SandboxAddressRow {
  sandbox_id: string;
  user_id: string;
  subnet_index: number;
  host: number;
}

export interface ReserveAddressInput {
  userId: string;
  sandboxId: string;
  firstHost: number;
  lastHost: number;
  /** 0 = any free host. */
  requestedHost: number;
  maxSubnetIndex: number;
}

/**
 * Subnet indexes per user and host numbers per sandbox. Every allocation runs in one
 * IMMEDIATE transaction (the write lock is taken before reading), so two concurrent calls,
 * even from two processes, can never pick the same number; UNIQUE constraints back this up.
 */
export interface AddressBook {
  assignSubnet(userId: string, maxIndex: number): number;
  subnetOf(userId: string): number | undefined;
  reserve(input: ReserveAddressInput): SandboxAddressRow;
  release(sandboxId: string): boolean;
  list(): SandboxAddressRow[];
  /** Removes a user's subnet (with the user); refused while it still has addresses. */
  forgetUser(userId: string): void;
}

export function createAddressBook(db: SqliteDatabase): AddressBook {
  const selectSubnet = db.prepare<[string], { subnet_index: number }>(
    "SELECT subnet_index FROM user_subnets WHERE user_id = ?",
  );
  // The lowest index not in use: 1 if free, else the first n+1 whose successor is missing.
  const lowestFreeIndex = db.prepare<[], { idx: number }>(`
    SELECT 1 AS idx WHERE NOT EXISTS (SELECT 1 FROM user_subnets WHERE subnet_index = 1)
    UNION ALL
    SELECT s.subnet_index + 1 AS idx FROM user_subnets s
     WHERE NOT EXISTS (SELECT 1 FROM user_subnets t WHERE t.subnet_index = s.subnet_index + 1)
    ORDER BY idx LIMIT 1`);
  const insertSubnet = db.prepare(
    "INSERT INTO user_subnets (user_id, subnet_index, assigned_at) VALUES (?, ?, ?)",
  );
  const selectAddress = db.prepare<[string], SandboxAddressRow>(
    "SELECT sandbox_id, user_id, subnet_index, host FROM sandbox_addresses WHERE sandbox_id = ?",
  );
  const hostHolder = db.prepare<[number, number], { sandbox_id: string }>(
    "SELECT sandbox_id FROM sandbox_addresses WHERE subnet_index = ? AND host = ?",
  );
  const usedHosts = db.prepare<[number, number, number], { host: number }>(
    "SELECT host FROM sandbox_addresses WHERE subnet_index = ? AND host BETWEEN ? AND ? ORDER BY host",
  );
  const insertAddress = db.prepare(
    "INSERT INTO sandbox_addresses (sandbox_id, user_id, subnet_index, host, reserved_at) VALUES (?, ?, ?, ?, ?)",
  );
  const deleteAddress = db.prepare("DELETE FROM sandbox_addresses WHERE sandbox_id = ?");
  const listAll = db.prepare<[], SandboxAddressRow>(
    "SELECT sandbox_id, user_id, subnet_index, host FROM sandbox_addresses ORDER BY subnet_index, host",
  );
  const countForUser = db.prepare<[string], { n: number }>(
    "SELECT count(*) AS n FROM sandbox_addresses WHERE user_id = ?",
  );
  const deleteSubnet = db.prepare("DELETE FROM user_subnets WHERE user_id = ?");

  const assignInTx = (userId: string, maxIndex: number): number => {
    const existing = selectSubnet.get(userId);
    if (existing) return existing.subnet_index;
    const next = lowestFreeIndex.get()?.idx ?? 1;
    if (maxIndex > 0 && next > maxIndex) {
      throw new ConnectError(`subnet pool exhausted (${maxIndex} user subnets)`, Code.ResourceExhausted);
    }
    insertSubnet.run(userId, next, nowIso());
    return next;
  };

  const assignSubnet = db.transaction(assignInTx);

  const reserve = db.transaction((input: ReserveAddressInput): SandboxAddressRow => {
    const { userId, sandboxId, firstHost, lastHost, requestedHost } = input;
    const held = selectAddress.get(sandboxId);
    if (held) {
      if (held.user_id !== userId) {
        throw new ConnectError(
          `sandbox ${sandboxId} already holds an address of another user`,
          Code.FailedPrecondition,
        );
      }
      if (requestedHost !== 0 && held.host !== requestedHost) {
        throw new ConnectError(
          `sandbox ${sandboxId} already holds host ${held.host}, not ${requestedHost}`,
          Code.FailedPrecondition,
        );
      }
      return held;
    }
    const subnet = assignInTx(userId, input.maxSubnetIndex);
    let host: number;
    if (requestedHost !== 0) {
      const holder = hostHolder.get(subnet, requestedHost);
      if (holder) {
        throw new ConnectError(
          `host ${requestedHost} of subnet ${subnet} is in use by another sandbox`,
          Code.AlreadyExists,
        );
      }
      host = requestedHost;
    } else {
      host = firstHost;
      for (const row of usedHosts.all(subnet, firstHost, lastHost)) {
        if (row.host !== host) break;
        host++;
      }
      if (host > lastHost) {
        throw new ConnectError(
          `address pool exhausted (${lastHost - firstHost + 1} sandboxes per user)`,
          Code.ResourceExhausted,
        );
      }
    }
    insertAddress.run(sandboxId, userId, subnet, host, nowIso());
    return { sandbox_id: sandboxId, user_id: userId, subnet_index: subnet, host };
  });

  const forgetUser = db.transaction((userId: string) => {
    if ((countForUser.get(userId)?.n ?? 0) > 0) {
      throw new ConnectError("user still holds sandbox addresses", Code.FailedPrecondition);
    }
    deleteSubnet.run(userId);
  });

  return {
    assignSubnet(userId, maxIndex) {
      if (userId === "") throw new ConnectError("user_id is required", Code.InvalidArgument);
      return assignSubnet.immediate(userId, maxIndex);
    },
    subnetOf: (userId) => selectSubnet.get(userId)?.subnet_index,
    reserve(input) {
      validateRange(input);
      return reserve.immediate(input);
    },
    release: (sandboxId) => deleteAddress.run(sandboxId).changes > 0,
    list: () => listAll.all(),
    forgetUser: (userId) => forgetUser.immediate(userId),
  };
}

function validateRange(input: ReserveAddressInput): void {
  const { firstHost, lastHost, requestedHost } = input;
  if (input.userId === "" || input.sandboxId === "") {
    throw new ConnectError("user_id and sandbox_id are required", Code.InvalidArgument);
  }
  if (firstHost < 1 || lastHost > 254 || firstHost > lastHost) {
    throw new ConnectError(
      `invalid host range ${firstHost}..${lastHost} (must be within 1..254, first <= last)`,
      Code.InvalidArgument,
    );
  }
  if (requestedHost !== 0 && (requestedHost < firstHost || requestedHost > lastHost)) {
    throw new ConnectError(
      `requested host ${requestedHost} is outside ${firstHost}..${lastHost}`,
      Code.InvalidArgument,
    );
  }
}
