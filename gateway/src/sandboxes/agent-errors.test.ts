import {
  AgentConnectionError,
  AgentError,
  AgentProtocolError,
  AgentTimeoutError,
} from "@bhatti/agent-client";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { httpStatusOf } from "../http-status.js";
import { agentErrorToConnect } from "./agent-errors.js";

const statusOf = (e: unknown) => {
  const c = agentErrorToConnect(e);
  expect(c).toBeInstanceOf(ConnectError);
  return httpStatusOf((c as ConnectError).code);
};

describe("agent failures as API statuses", () => {
  it("a silent agent is 504, a corrupt reply 502, an unreachable one 503, a client gone 499", () => {
    expect(statusOf(new AgentTimeoutError("no reply"))).toBe(504);
    expect(statusOf(new AgentProtocolError("invalid JSON in FILE_STAT_RESP"))).toBe(502);
    expect(statusOf(new AgentConnectionError("connection refused", { code: "ECONNREFUSED" }))).toBe(503);
    expect(statusOf(new DOMException("the client went away", "AbortError"))).toBe(499);
    expect(statusOf(new AgentError("no such file or directory"))).toBe(404);
  });

  it("never passes the agent's own words for a corrupt reply (it may be hostile)", () => {
    const c = agentErrorToConnect(
      new AgentProtocolError("malformed FILE_READ_RESP: <script>"),
    ) as ConnectError;
    expect(c.code).toBe(Code.DataLoss);
    expect(c.rawMessage).not.toContain("<script>");
  });
});
