import { join } from "node:path";
import { type SqliteDatabase, openStoreDatabase } from "./adapters/sqlite-database.js";
import { type AddressBook, createAddressBook } from "./domain/addresses.js";

export interface StoreOptions {
  stateDir: string;
}

/** Everything the store process owns, built on one open database. */
export interface Store {
  readonly db: SqliteDatabase;
  readonly databasePath: string;
  readonly addresses: AddressBook;
  close(): void;
}

export function databasePathIn(stateDir: string): string {
  return join(stateDir, "state.db");
}

export function openStore(options: StoreOptions): Store {
  const databasePath = databasePathIn(options.stateDir);
  const db = openStoreDatabase(databasePath);
  return {
    db,
    databasePath,
    addresses: createAddressBook(db),
    close: () => db.close(),
  };
}
