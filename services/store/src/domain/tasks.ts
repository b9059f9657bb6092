import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import { newId } from "./ids.js";
import type { UserDirectory } from "./users.js";

export interface TaskRow {
  id: string;
  user_id: string;
  type: string;
  status: string;
  progress: string;
  result: string;
  error: string;
  created_at: string;
  completed_at: string | null;
}

const TASK_TYPE = /^[a-z][a-z0-9_]{0,31}$/;
const FINAL_STATUSES = ["completed", "failed", "cancelled"];
const MAX_TASK_TEXT = 64 * 1024;

export interface TaskBoard {
  create(userId: string, type: string): TaskRow;
  get(userId: string, id: string): TaskRow;
  list(userId: string): TaskRow[];
  update(
    userId: string,
    id: string,
    changes: { progress?: string; status?: string; resultJson?: string; error?: string },
  ): TaskRow;
  /** Deletes finished tasks that completed before `beforeIso`. */
  purgeFinished(beforeIso: string): number;
}

export function createTaskBoard(db: SqliteDatabase, users: UserDirectory): TaskBoard {
  const select = db.prepare<[string, string], TaskRow>("SELECT * FROM tasks WHERE id = ? AND user_id = ?");
  const find = (userId: string, id: string): TaskRow => {
    const row = select.get(id, userId);
    if (!row) throw new ConnectError(`task ${JSON.stringify(id.slice(0, 40))} not found`, Code.NotFound);
    return row;
  };
  const checkText = (field: string, v: string) => {
    if (Buffer.byteLength(v) > MAX_TASK_TEXT) {
      throw new ConnectError(`${field} is larger than ${MAX_TASK_TEXT} bytes`, Code.InvalidArgument);
    }
  };
  return {
    create(userId, type) {
      users.byId(userId);
      if (!TASK_TYPE.test(type)) {
        throw new ConnectError(
          `invalid task type ${JSON.stringify(type)}: must match ${TASK_TYPE.source}`,
          Code.InvalidArgument,
        );
      }
      const row: TaskRow = {
        id: newId(),
        user_id: userId,
        type,
        status: "running",
        progress: "",
        result: "{}",
        error: "",
        created_at: nowIso(),
        completed_at: null,
      };
      db.prepare(`INSERT INTO tasks (id, user_id, type, status, progress, result, error, created_at, completed_at)
        VALUES (@id, @user_id, @type, @status, @progress, @result, @error, @created_at, @completed_at)`).run(
        row,
      );
      return row;
    },
    get: find,
    list: (userId) =>
      db
        .prepare<[string], TaskRow>("SELECT * FROM tasks WHERE user_id = ? ORDER BY created_at DESC")
        .all(userId),
    update: (userId, id, changes) =>
      db
        .transaction(() => {
          const row = { ...find(userId, id) };
          if (row.status !== "running") {
            throw new ConnectError(`task ${id} is already ${row.status}`, Code.FailedPrecondition);
          }
          if (changes.progress !== undefined) {
            checkText("progress", changes.progress);
            row.progress = changes.progress;
          }
          if (changes.resultJson !== undefined) {
            checkText("result_json", changes.resultJson);
            try {
              JSON.parse(changes.resultJson);
            } catch {
              throw new ConnectError("result_json is not valid JSON", Code.InvalidArgument);
            }
            row.result = changes.resultJson;
          }
          if (changes.error !== undefined) {
            checkText("error", changes.error);
            row.error = changes.error;
          }
          if (changes.status !== undefined) {
            if (!FINAL_STATUSES.includes(changes.status)) {
              throw new ConnectError(
                `task status must be one of ${FINAL_STATUSES.join(", ")}`,
                Code.InvalidArgument,
              );
            }
            row.status = changes.status;
            row.completed_at = nowIso();
          }
          db.prepare(`UPDATE tasks SET status = @status, progress = @progress, result = @result, error = @error,
            completed_at = @completed_at WHERE id = @id`).run(row);
          return row;
        })
        .immediate(),
    purgeFinished: (beforeIso) =>
      db.prepare("DELETE FROM tasks WHERE status != 'running' AND completed_at < ?").run(beforeIso).changes,
  };
}
