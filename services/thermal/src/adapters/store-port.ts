import type { StoreService } from "@bhatti/proto";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { SandboxRow, StorePort } from "../domain/ports.js";

/** StorePort over the store's Connect API, acting for the system (any_user). */
export function createStorePort(store: Client<typeof StoreService>): StorePort {
  return {
    async listSandboxes(): Promise<SandboxRow[]> {
      const { sandboxes } = await store.listSandboxes({ anyUser: true });
      return sandboxes.map((s) => ({
        id: s.id,
        userId: s.userId,
        status: s.status,
        keepHot: s.keepHot,
        lastActivityAt: s.lastActivityAt === undefined ? 0 : timestampDate(s.lastActivityAt).getTime(),
      }));
    },
    async saveLastActivity(entries) {
      // One small update per sandbox that saw activity since the last save.
      await Promise.all(
        [...entries].map(([id, at]) =>
          store.updateSandbox({ anyUser: true, sandbox: id, lastActivityAt: timestampFromMs(at) }),
        ),
      );
    },
    async setStatus(id, status) {
      await store.updateSandbox({ anyUser: true, sandbox: id, status });
    },
    async appendEvents(events) {
      await store.appendEvents({
        events: events.map((e) => ({
          type: e.type,
          userId: e.userId,
          sandboxId: e.sandboxId,
          metaJson: JSON.stringify(e.meta),
        })),
      });
    },
  };
}
