import { type Share, ShareService } from "@bhatti/proto/v1/share_pb";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { CliError } from "../cli-error.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";

/** The REST shape of a share (`POST /sandboxes/:id/share`), for --json. */
const shareJson = (s: Share) => ({
  id: s.id,
  sandbox_id: s.sandboxId,
  session_id: s.sessionId,
  read_only: s.readOnly,
  expires_at: s.expiresAt === undefined ? "" : timestampDate(s.expiresAt).toISOString(),
  created_at: s.createdAt === undefined ? "" : timestampDate(s.createdAt).toISOString(),
  ...(s.token !== "" ? { token: s.token } : {}),
  ...(s.url !== "" ? { url: s.url } : {}),
});

const UNIT_SEC: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/** `90s`, `30m`, `1h`, `7d` as seconds. */
export function parseExpiry(raw: string): number {
  const m = /^(\d+)([smhd])$/.exec(raw.trim());
  const sec = m?.[1] !== undefined && m[2] !== undefined ? Number(m[1]) * (UNIT_SEC[m[2]] ?? 0) : 0;
  if (sec < 1) throw new CliError(`--expires: expected a duration such as 30m, 1h or 7d, got "${raw}"`);
  return sec;
}

export async function runShare(
  options: GlobalOptions,
  sandbox: string,
  opts: { expires?: string; readOnly?: boolean; session?: string; list?: boolean; revoke?: string | boolean },
): Promise<void> {
  const { client } = createGatewayClient(ShareService, options);
  if (opts.revoke !== undefined) {
    const shareId = typeof opts.revoke === "string" ? opts.revoke : "";
    const { shareIds } = await client.revokeShares({ sandbox, shareId });
    emit(options, { revoked: shareIds }, () =>
      process.stdout.write(
        shareIds.length === 0
          ? "no live share to revoke\n"
          : `revoked ${shareIds.length} share(s): ${shareIds.join(" ")}\n`,
      ),
    );
    return;
  }
  if (opts.list === true) {
    const { shares } = await client.listShares({ sandbox });
    const rows = shares.map(shareJson);
    emit(options, rows, () =>
      printTable(
        ["ID", "SESSION", "READ-ONLY", "EXPIRES"],
        rows.map((r) => [r.id, r.session_id, r.read_only ? "yes" : "no", r.expires_at]),
      ),
    );
    return;
  }
  const { share } = await client.createShare({
    sandbox,
    expiresSec: BigInt(opts.expires === undefined ? 0 : parseExpiry(opts.expires)),
    readOnly: opts.readOnly === true,
    sessionId: opts.session ?? "",
  });
  if (share === undefined) throw new CliError("the gateway returned no share");
  emit(options, shareJson(share), () => {
    process.stdout.write(`${share.url}\n`);
    process.stderr.write(
      `session ${share.sessionId}${share.readOnly ? ", read-only" : ""}, expires ${shareJson(share).expires_at}; ` +
        `revoke with: bhatti share ${sandbox} --revoke ${share.id}\n`,
    );
  });
}
