import type { PublishedPort } from "./gen/bhatti/v1/publish_pb.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";

/** A published port (`/sandboxes/:id/publish`, `bhatti publish --json`); v1's shape plus `private`. */
export interface PublishedPortJson {
  id: string;
  sandbox_id: string;
  port: number;
  alias: string;
  url: string;
  private: boolean;
  created_at: string;
}

export function publishedPortJson(p: PublishedPort): PublishedPortJson {
  return {
    id: p.id,
    sandbox_id: p.sandboxId,
    port: p.port,
    alias: p.alias,
    url: p.url,
    private: p.private,
    // Same form as rest-json's isoTime (not imported: rest-json re-exports this module).
    created_at: p.createdAt === undefined ? "" : timestampDate(p.createdAt).toISOString(),
  };
}
