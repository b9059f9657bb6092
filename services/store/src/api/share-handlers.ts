import type { ServiceImpl } from "@connectrpc/connect";
import type { ShareStoreService } from "@bhatti/proto";
import type { ShareRegistry, ShareRow } from "../domain/shares.js";
import { fromTimestamp, optionalTimestamp, toTimestamp } from "./convert.js";

const shareToProto = (r: ShareRow) => ({
  id: r.id,
  sandboxId: r.sandbox_id,
  userId: r.user_id,
  sessionId: r.session_id,
  readOnly: r.read_only === 1,
  expiresAt: toTimestamp(r.expires_at),
  createdAt: toTimestamp(r.created_at),
  revokedAt: optionalTimestamp(r.revoked_at),
});

/** ShareStoreService: the records of share links (errors are the registry's ConnectErrors). */
export function createShareStoreHandlers(
  shares: ShareRegistry,
  shareKey: () => Buffer,
): ServiceImpl<typeof ShareStoreService> {
  return {
    getShareKey: () => ({ key: shareKey() }),
    recordShare: (req) => ({
      share: shareToProto(
        shares.record({
          id: req.id,
          userId: req.userId,
          sandboxRef: req.sandbox,
          sessionId: req.sessionId,
          readOnly: req.readOnly,
          expiresAt: fromTimestamp(req.expiresAt) ?? "",
        }),
      ),
    }),
    getShare: (req) => ({ share: shareToProto(shares.get(req.id)) }),
    listShares: (req) => ({ shares: shares.list(req.userId, req.sandbox).map(shareToProto) }),
    revokeShares: (req) => ({
      shareIds: shares.revoke(req.userId, req.sandbox, req.shareId === "" ? undefined : req.shareId),
    }),
  };
}
