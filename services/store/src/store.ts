import { join } from "node:path";
import {
  AgeKeyError,
  type SecretCipher,
  ageKeyPresent,
  loadOrCreateAgeIdentity,
} from "./adapters/age-cipher.js";
import { readHostStats } from "./adapters/host-stats.js";
import { type SqliteDatabase, openStoreDatabase } from "./adapters/sqlite-database.js";
import { type AddressBook, createAddressBook } from "./domain/addresses.js";
import { type EventLog, createEventLog } from "./domain/events.js";
import { type ImageCatalog, createImageCatalog } from "./domain/images.js";
import { type MetricsRecorder, createMetricsRecorder } from "./domain/metrics.js";
import { type PublishRules, createPublishRules } from "./domain/publish-rules.js";
import { type SandboxRegistry, createSandboxRegistry } from "./domain/sandboxes.js";
import { type SecretVault, createSecretVault } from "./domain/secrets.js";
import { type ShareRegistry, createShareRegistry } from "./domain/shares.js";
import { type ShellTokens, createShellTokens } from "./domain/shell-tokens.js";
import { type SnapshotRegistry, createSnapshotRegistry } from "./domain/snapshots.js";
import { type TaskBoard, createTaskBoard } from "./domain/tasks.js";
import { type UserDirectory, createUserDirectory } from "./domain/users.js";
import { type VolumeRegistry, createVolumeRegistry } from "./domain/volumes.js";

export interface StoreOptions {
  stateDir: string;
}

/** Everything the store process owns, built on one open database. */
export interface Store {
  readonly db: SqliteDatabase;
  readonly databasePath: string;
  readonly ageKeyPath: string;
  readonly addresses: AddressBook;
  readonly events: EventLog;
  readonly users: UserDirectory;
  readonly sandboxes: SandboxRegistry;
  readonly secrets: SecretVault;
  readonly metrics: MetricsRecorder;
  readonly volumes: VolumeRegistry;
  readonly images: ImageCatalog;
  readonly snapshots: SnapshotRegistry;
  readonly publishRules: PublishRules;
  readonly shellTokens: ShellTokens;
  readonly shares: ShareRegistry;
  readonly tasks: TaskBoard;
  close(): void;
}

export function databasePathIn(stateDir: string): string {
  return join(stateDir, "state.db");
}

export async function openStore(options: StoreOptions): Promise<Store> {
  const databasePath = databasePathIn(options.stateDir);
  const ageKeyPath = join(options.stateDir, "age.key");
  const hadKey = ageKeyPresent(ageKeyPath);
  const db = openStoreDatabase(databasePath);
  let cipher: SecretCipher;
  try {
    // A lost key with secrets still stored must not be papered over by a fresh key.
    const sealed = (db.prepare("SELECT count(*) AS n FROM secrets").get() as { n: number }).n;
    if (!hadKey && sealed > 0) {
      throw new AgeKeyError(
        `age key ${ageKeyPath} is missing but the database holds ${sealed} encrypted secrets; ` +
          "restore the key file (refusing to create a new one that could not decrypt them)",
      );
    }
    cipher = await loadOrCreateAgeIdentity(ageKeyPath);
  } catch (e) {
    db.close();
    throw e;
  }
  const addresses = createAddressBook(db);
  const events = createEventLog(db);
  const users = createUserDirectory(db, events, addresses);
  const sandboxes = createSandboxRegistry(db, users, events, addresses);
  return {
    db,
    databasePath,
    ageKeyPath,
    addresses,
    events,
    users,
    sandboxes,
    secrets: createSecretVault(db, cipher, users, events),
    metrics: createMetricsRecorder(db, () => readHostStats(options.stateDir)),
    volumes: createVolumeRegistry(db, users, sandboxes, events),
    images: createImageCatalog(db, users),
    snapshots: createSnapshotRegistry(db, users, events),
    publishRules: createPublishRules(db, sandboxes),
    shellTokens: createShellTokens(db, sandboxes),
    shares: createShareRegistry(db, sandboxes),
    tasks: createTaskBoard(db, users),
    close() {
      // Counted events (auth.failed) carry their last counts into the file.
      try {
        events.flushCounts();
      } finally {
        db.close();
      }
    },
  };
}

export interface HousekeepingOptions {
  metricsIntervalMs: number;
  eventRetentionMs: number;
  metricsRetentionMs: number;
  onError: (what: string, error: unknown) => void;
}

/** Metrics snapshots on a timer, and retention pruning (at start, then hourly). Returns a stop function. */
export function startHousekeeping(store: Store, options: HousekeepingOptions): () => void {
  const prune = () => {
    try {
      const now = Date.now();
      store.events.prune(new Date(now - options.eventRetentionMs).toISOString());
      store.metrics.prune(new Date(now - options.metricsRetentionMs).toISOString());
      // Finished tasks are kept for a day so clients can still read their result.
      store.tasks.purgeFinished(new Date(now - 86_400_000).toISOString());
    } catch (e) {
      options.onError("retention pruning", e);
    }
  };
  const snapshot = () => {
    try {
      store.metrics.record();
    } catch (e) {
      options.onError("metrics snapshot", e);
    }
  };
  prune();
  const timers = [
    setInterval(snapshot, options.metricsIntervalMs),
    setInterval(prune, Math.min(3_600_000, options.eventRetentionMs, options.metricsRetentionMs)),
  ];
  for (const t of timers) t.unref();
  return () => {
    for (const t of timers) clearInterval(t);
  };
}
