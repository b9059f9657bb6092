// The store's building blocks, for benchmarks and tools that need them in-process.
export {
  DatabaseRefusedError,
  openStoreDatabase,
  schemaVersion,
  type SqliteDatabase,
} from "./adapters/sqlite-database.js";
export { storeMigrations, type Migration } from "./adapters/migrations.js";
export { createEventLog, type EventLog } from "./domain/events.js";
export { EVENT_TYPES, type EventType } from "./domain/event-types.js";
export { databasePathIn, openStore, type Store } from "./store.js";
export { makeTestDir, removeTestDir, startStoreProcess, type StoreProcess } from "./testing/store-process.js";
