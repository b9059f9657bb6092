import type { ServiceImpl } from "@connectrpc/connect";
import type { EventFilter, StoreService } from "@bhatti/proto";
import type { EventLog, EventQuery, EventRow } from "../domain/events.js";
import type { UserDirectory } from "../domain/users.js";
import { fromTimestamp, toTimestamp } from "./convert.js";

type EventMethods = Pick<ServiceImpl<typeof StoreService>, "appendEvents" | "queryEvents">;

export function eventToProto(row: EventRow) {
  return {
    id: BigInt(row.id),
    ts: toTimestamp(row.ts),
    type: row.type,
    userId: row.user_id,
    sandboxId: row.sandbox_id,
    metaJson: row.meta,
  };
}

export function eventQueryFromProto(filter: EventFilter | undefined): EventQuery {
  const q: EventQuery = {};
  if (!filter) return q;
  const since = fromTimestamp(filter.since);
  const until = fromTimestamp(filter.until);
  if (since) q.since = since;
  if (until) q.until = until;
  if (filter.typePrefix) q.typePrefix = filter.typePrefix;
  if (filter.userId) q.userId = filter.userId;
  if (filter.sandboxId) q.sandboxId = filter.sandboxId;
  if (filter.limit) q.limit = filter.limit;
  if (filter.beforeId) q.beforeId = Number(filter.beforeId);
  return q;
}

export function createEventHandlers(events: EventLog, users: UserDirectory): EventMethods {
  return {
    appendEvents: (req) => ({
      ids: events
        .append(
          req.events.map((e) => ({
            type: e.type,
            userId: e.userId,
            sandboxId: e.sandboxId,
            meta: e.metaJson,
          })),
        )
        .map(BigInt),
    }),
    queryEvents(req) {
      users.requireAdmin(req.actingUserId);
      const { events: rows, total } = events.query(eventQueryFromProto(req.filter));
      return { events: rows.map(eventToProto), total: BigInt(total) };
    },
  };
}
