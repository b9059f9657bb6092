import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type SandboxRecordSchema, type StoreService, thermalName } from "@bhatti/proto";
import { crashPoint } from "@bhatti/runtime";
import { type SandboxChanges, type SandboxRegistry, type SandboxRow, scopeOf } from "../domain/sandboxes.js";
import { fromTimestamp, optionalTimestamp, thermalStateOfRow, toTimestamp } from "./convert.js";

type SandboxMethods = Pick<
  ServiceImpl<typeof StoreService>,
  "createSandbox" | "getSandbox" | "listSandboxes" | "updateSandbox" | "deleteSandbox"
>;

export function sandboxToProto(row: SandboxRow): MessageInitShape<typeof SandboxRecordSchema> {
  return {
    id: row.id,
    name: row.name,
    templateId: row.template_id,
    engineId: row.engine_id,
    status: row.status,
    ip: row.ip,
    engineMetaJson: row.engine_meta,
    userId: row.user_id,
    createdAt: toTimestamp(row.created_at),
    ...(row.stopped_at ? { stoppedAt: optionalTimestamp(row.stopped_at) } : {}),
    keepHot: row.keep_hot === 1,
    cpus: row.cpus,
    memoryMb: row.memory_mb,
    diskSizeMb: row.disk_size_mb,
    image: row.image,
    labels: JSON.parse(row.labels) as Record<string, string>,
    engineStateJson: row.engine_state,
    agentToken: row.agent_token,
    thermalState: thermalStateOfRow(row.thermal_state),
    thermalSince: toTimestamp(row.thermal_since),
    lastActivityAt: toTimestamp(row.last_activity_at),
    updatedAt: toTimestamp(row.updated_at),
  };
}

export function createSandboxHandlers(sandboxes: SandboxRegistry): SandboxMethods {
  return {
    createSandbox(req) {
      const row = sandboxes.create({
        userId: req.userId,
        id: req.id,
        name: req.name,
        templateId: req.templateId,
        image: req.image,
        cpus: req.cpus,
        memoryMb: req.memoryMb,
        diskSizeMb: req.diskSizeMb,
        keepHot: req.keepHot,
        labels: req.labels,
        status: req.status,
        engineId: req.engineId,
        engineMetaJson: req.engineMetaJson,
        engineStateJson: req.engineStateJson,
        agentToken: req.agentToken,
        ip: req.ip,
      });
      // Committed, but the caller never hears of it.
      crashPoint("store.createSandbox.after-commit");
      return { sandbox: sandboxToProto(row) };
    },
    getSandbox: (req) => ({
      sandbox: sandboxToProto(sandboxes.get(scopeOf(req.userId, req.anyUser), req.sandbox)),
    }),
    listSandboxes: (req) => ({
      sandboxes: sandboxes
        .list(scopeOf(req.userId, req.anyUser), { labels: req.labels, statuses: req.statuses })
        .map(sandboxToProto),
    }),
    updateSandbox(req) {
      const changes: SandboxChanges = { labelsAdd: req.labelsAdd, labelsRemove: req.labelsRemove };
      if (req.name !== undefined) changes.name = req.name;
      if (req.keepHot !== undefined) changes.keepHot = req.keepHot;
      if (req.status !== undefined) changes.status = req.status;
      if (req.ip !== undefined) changes.ip = req.ip;
      if (req.engineId !== undefined) changes.engineId = req.engineId;
      if (req.engineMetaJson !== undefined) changes.engineMetaJson = req.engineMetaJson;
      if (req.engineStateJson !== undefined) changes.engineStateJson = req.engineStateJson;
      if (req.agentToken !== undefined) changes.agentToken = req.agentToken;
      // UNSPECIFIED has no name: "" is refused by the registry like any unknown state.
      if (req.thermalState !== undefined) changes.thermalState = thermalName(req.thermalState) ?? "";
      const lastActivityAt = fromTimestamp(req.lastActivityAt);
      if (lastActivityAt !== undefined) changes.lastActivityAt = lastActivityAt;
      if (req.status !== undefined) crashPoint(`store.updateSandbox.before-commit.${req.status}`);
      const row = sandboxes.update(scopeOf(req.userId, req.anyUser), req.sandbox, changes);
      if (req.status !== undefined) crashPoint(`store.updateSandbox.after-commit.${req.status}`);
      return { sandbox: sandboxToProto(row) };
    },
    deleteSandbox(req) {
      crashPoint("store.deleteSandbox.before-commit");
      const row = sandboxes.delete(scopeOf(req.userId, req.anyUser), req.sandbox);
      crashPoint("store.deleteSandbox.after-commit");
      return { sandbox: sandboxToProto(row) };
    },
  };
}
