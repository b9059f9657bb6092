import type { StoreService } from "@bhatti/proto";
import { processHealth } from "@bhatti/runtime";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Store } from "../store.js";
import { createAddressHandlers } from "./address-handlers.js";
import { createAdminHandlers } from "./admin-handlers.js";
import { createEventHandlers } from "./event-handlers.js";
import { createImageHandlers } from "./image-handlers.js";
import { createPublishHandlers } from "./publish-handlers.js";
import { createSandboxHandlers } from "./sandbox-handlers.js";
import { createSecretHandlers } from "./secret-handlers.js";
import { createSnapshotHandlers } from "./snapshot-handlers.js";
import { createTaskHandlers } from "./task-handlers.js";
import { createUserHandlers } from "./user-handlers.js";
import { createVolumeHandlers } from "./volume-handlers.js";

export interface StoreHandlersOptions {
  store: Store;
  /** Where `CreateBackup` writes. */
  backupDir: string;
}

/**
 * The StoreService handlers, Health included: one family module per resource, assembled here.
 *
 * No error interceptor: the store's domain modules throw ConnectError with its code themselves
 * (NotFound, AlreadyExists, InvalidArgument, FailedPrecondition, ResourceExhausted, …), because each
 * rule and its code are decided in the same place and every caller is a Connect client. Keep it
 * that way: a domain error class here would need an interceptor like the vmm's and network's.
 * Anything else thrown is a bug and becomes Internal without detail in the request-context
 * interceptor.
 */
export function createStoreHandlers(options: StoreHandlersOptions): ServiceImpl<typeof StoreService> {
  const { store } = options;
  return {
    health: () => ({
      health: processHealth("store", [
        { name: "database", ready: store.db.open, detail: store.databasePath },
      ]),
    }),
    ...createAddressHandlers(store.addresses),
    ...createUserHandlers(store.users),
    ...createEventHandlers(store.events, store.users),
    ...createSandboxHandlers(store.sandboxes),
    ...createSecretHandlers(store.secrets),
    ...createAdminHandlers(store.db, store.users, store.events, store.metrics, options.backupDir),
    ...createVolumeHandlers(store.volumes),
    ...createImageHandlers(store.images),
    ...createSnapshotHandlers(store.snapshots),
    ...createPublishHandlers(store.publishRules, store.shellTokens),
    ...createTaskHandlers(store.tasks),
  };
}
