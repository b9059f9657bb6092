import { join } from "node:path";
import { type SqliteDatabase, openStoreDatabase } from "./adapters/sqlite-database.js";
import { type AddressBook, createAddressBook } from "./domain/addresses.js";
import { type EventLog, createEventLog } from "./domain/events.js";
import { type SandboxRegistry, createSandboxRegistry } from "./domain/sandboxes.js";
import { type UserDirectory, createUserDirectory } from "./domain/users.js";

export interface StoreOptions {
  stateDir: string;
}

/** Everything the store process owns, built on one open database. */
export interface Store {
  readonly db: SqliteDatabase;
  readonly databasePath: string;
  readonly addresses: AddressBook;
  readonly events: EventLog;
  readonly users: UserDirectory;
  readonly sandboxes: SandboxRegistry;
  close(): void;
}

export function databasePathIn(stateDir: string): string {
  return join(stateDir, "state.db");
}

export function openStore(options: StoreOptions): Store {
  const databasePath = databasePathIn(options.stateDir);
  const db = openStoreDatabase(databasePath);
  const addresses = createAddressBook(db);
  const events = createEventLog(db);
  const users = createUserDirectory(db, events, addresses);
  return {
    db,
    databasePath,
    addresses,
    events,
    users,
    sandboxes: createSandboxRegistry(db, users, events, addresses),
    close: () => db.close(),
  };
}
