// CLAIM_REQ against a real agent (in this process, on loopback): accepted once, only by an
// agent booted as a template, only with the template's token; afterwards only the new token
// opens connections, and commands see the claimed env, secrets and files.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { AgentError, claimAgent, createAgentClient } from "@bhatti/agent-client";
import type { ClaimRequest } from "@bhatti/agent-protocol";
import { afterEach, describe, expect, it } from "vitest";
import { currentIdentity } from "../identity.js";
import { createAgentLogger } from "../logger.js";
import { type RunningAgent, startAgent } from "../start-agent.js";

const running: RunningAgent[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const a of running.splice(0)) await a.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function agent(template: boolean) {
  const token = randomBytes(16).toString("hex");
  const a = await startAgent({
    token,
    user: currentIdentity(),
    allowRoot: false,
    workdir: tmpdir(),
    baseEnv: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" },
    configEnv: {},
    control: { host: "127.0.0.1", port: 0 },
    forward: { host: "127.0.0.1", port: 0 },
    log: createAgentLogger(() => undefined),
    ...(template ? { template: true } : {}),
  });
  running.push(a);
  const control = { host: "127.0.0.1", port: a.controlAddress.port };
  const forward = { host: "127.0.0.1", port: a.forwardAddress.port };
  const client = (t: string) => createAgentClient({ control, forward, token: t, pool: false });
  return { token, control, client };
}

function claim(over: Partial<ClaimRequest> = {}): ClaimRequest {
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-claim-"));
  dirs.push(dir);
  return {
    token: randomBytes(16).toString("hex"),
    sandbox_id: "0123456789abcdef",
    // The host's own name: applyBootConfig leaves the (host's) hostname alone.
    hostname: hostname(),
    env: { CLAIMED: "env-value" },
    secrets: { API_KEY: "secret-value" },
    files: [{ path: join(dir, "given.txt"), content: Buffer.from("file-at-claim").toString("base64") }],
    ...over,
  };
}

describe("CLAIM_REQ", () => {
  it("hands a template agent to its sandbox: new token only, env, secrets and files applied", async () => {
    const a = await agent(true);
    const req = claim();
    await claimAgent(a.control, a.token, req);
    expect(readFileSync(req.files[0]!.path, "utf8")).toBe("file-at-claim");

    const stale = a.client(a.token);
    await expect(stale.exec(["true"])).rejects.toBeInstanceOf(AgentError);
    stale.close();
    const own = a.client(req.token);
    const r = await own.exec(["sh", "-c", 'echo "$CLAIMED $API_KEY"']);
    own.close();
    expect(r.stdout.toString()).toBe("env-value secret-value\n");
  });

  it("is accepted once: a second claim is refused, even with the new token", async () => {
    const a = await agent(true);
    const req = claim();
    await claimAgent(a.control, a.token, req);
    await expect(claimAgent(a.control, req.token, claim())).rejects.toThrow(/claim refused/);
    await expect(claimAgent(a.control, a.token, claim())).rejects.toThrow(/auth required/);
  });

  it("is refused by an agent that was not booted as a template", async () => {
    const a = await agent(false);
    const req = claim();
    await expect(claimAgent(a.control, a.token, req)).rejects.toThrow(/claim refused/);
    const c = a.client(a.token);
    expect((await c.exec(["true"])).exitCode).toBe(0);
    c.close();
  });

  it("a malformed claim changes nothing (the template token still works, a good claim then succeeds)", async () => {
    const a = await agent(true);
    await expect(claimAgent(a.control, a.token, claim({ token: "short" }))).rejects.toThrow(/bad request/);
    const c = a.client(a.token);
    expect((await c.exec(["true"])).exitCode).toBe(0);
    c.close();
    await claimAgent(a.control, a.token, claim());
  });
});
