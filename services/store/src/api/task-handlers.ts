import type { ServiceImpl } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import type { TaskBoard, TaskRow } from "../domain/tasks.js";
import { optionalTimestamp, toTimestamp } from "./convert.js";

type TaskMethods = Pick<
  ServiceImpl<typeof StoreService>,
  "createTask" | "getTask" | "listTasks" | "updateTask"
>;

export const taskToProto = (t: TaskRow) => ({
  id: t.id,
  userId: t.user_id,
  type: t.type,
  status: t.status,
  progress: t.progress,
  resultJson: t.result,
  error: t.error,
  createdAt: toTimestamp(t.created_at),
  ...(t.completed_at ? { completedAt: optionalTimestamp(t.completed_at) } : {}),
});

export function createTaskHandlers(tasks: TaskBoard): TaskMethods {
  return {
    createTask: (req) => ({ task: taskToProto(tasks.create(req.userId, req.type)) }),
    getTask: (req) => ({ task: taskToProto(tasks.get(req.userId, req.taskId)) }),
    listTasks: (req) => ({ tasks: tasks.list(req.userId).map(taskToProto) }),
    updateTask(req) {
      const changes: { progress?: string; status?: string; resultJson?: string; error?: string } = {};
      if (req.progress !== undefined) changes.progress = req.progress;
      if (req.status !== undefined) changes.status = req.status;
      if (req.resultJson !== undefined) changes.resultJson = req.resultJson;
      if (req.error !== undefined) changes.error = req.error;
      return { task: taskToProto(tasks.update(req.userId, req.taskId, changes)) };
    },
  };
}
