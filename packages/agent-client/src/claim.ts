import { type ClaimRequest, FrameType } from "@bhatti/agent-protocol";
import { type AgentEndpoint, dialAgent } from "./agent-connection.js";
import { isStatusOk } from "./reply-shapes.js";

/**
 * Claims an agent restored from a template checkpoint (docs/templates.md): authenticates with
 * the template's token and hands over the sandbox's own token, hostname, env and files. After
 * the CLAIM_RESP only `req.token` opens connections to that agent.
 */
export async function claimAgent(
  control: AgentEndpoint,
  templateToken: string,
  req: ClaimRequest,
  timeoutMs = 10_000,
): Promise<void> {
  const conn = await dialAgent(control, timeoutMs);
  const disarm = conn.deadline(timeoutMs, "CLAIM_RESP");
  try {
    conn.send(FrameType.AUTH, templateToken);
    conn.sendJson(FrameType.CLAIM_REQ, req);
    await conn.expectJson(FrameType.CLAIM_RESP, isStatusOk);
  } finally {
    disarm();
    conn.close();
  }
}
