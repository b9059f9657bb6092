import { type ClaimRequest, FrameType, errorTextFor, parseClaimRequest } from "@bhatti/agent-protocol";
import { hostname } from "node:os";
import type { AgentContext } from "../agent-context.js";
import { applyBootConfig } from "../boot-config-apply.js";
import type { FrameSink } from "../server/frame-sink.js";
import { startInitSession } from "./init-session.js";

/**
 * CLAIM_REQ: an agent booted as a per-image template (restored from its checkpoint into a new
 * sandbox) becomes that sandbox's agent. The connection was authenticated with the template's
 * token; from the moment the new token is set, only it is accepted (the template token, shared
 * by every sandbox restored from the same checkpoint, never works again). Accepted once.
 */
export async function handleClaim(ctx: AgentContext, sink: FrameSink, payload: Uint8Array): Promise<void> {
  if (ctx.claimable !== true) {
    sink.fail("claim refused: this agent is not an unclaimed template");
    return;
  }
  let req: ClaimRequest;
  try {
    req = parseClaimRequest(payload);
  } catch (err) {
    sink.fail(errorTextFor.badRequest((err as Error).message));
    return;
  }
  // Token first, synchronously: no connection authenticates with the old one after this point.
  ctx.claimable = false;
  ctx.token = req.token;
  // The clock still says when the template was built: idle detection starts from the claim.
  ctx.activity.touch();
  ctx.configEnv = { ...req.env, ...req.secrets };
  // Through the pre-forked helper when it can; applyBootConfig runs `hostname` itself if the
  // name still differs afterwards.
  const helper = ctx.hostnameHelper;
  delete ctx.hostnameHelper;
  if (helper !== undefined) {
    if (req.hostname !== "" && req.hostname !== hostname()) {
      if (!(await helper.set(req.hostname))) ctx.log.warn("hostname helper failed; running hostname");
    } else {
      helper.dispose();
    }
  }
  applyBootConfig(
    {
      version: 1,
      token: req.token,
      sandbox_id: req.sandbox_id,
      hostname: req.hostname,
      files: req.files,
      user: ctx.user,
    },
    ctx.log,
  );
  if (req.init !== undefined && req.init !== "") startInitSession(ctx, req.init);
  ctx.log.info("claimed", { sandbox: req.sandbox_id });
  sink.sendJson(FrameType.CLAIM_RESP, { status: "ok" });
  sink.end();
}
