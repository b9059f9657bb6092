export {
  DEFAULT_OPERATION_TIMEOUT_MS,
  createAgentClient,
  type AgentClient,
  type AgentClientOptions,
  type BufferedExecOptions,
  type CallOptions,
  type ExecOptions,
  type ExecResult,
  type FileReadStream,
  type ReadFileOptions,
  type SessionOptions,
  type WaitReadyOptions,
  type WriteFileOptions,
} from "./agent-client.js";
export { AgentConnection, dialAgent, describeEndpoint, type AgentEndpoint } from "./agent-connection.js";
export { AgentConnectionError, AgentError, AgentProtocolError, AgentTimeoutError } from "./agent-error.js";
export type { ConnectionPoolOptions } from "./connection-pool.js";
export { ExecProcess, type ExecEvent } from "./exec-process.js";
export { SessionConnection, type SessionEvent } from "./session-connection.js";
export { WAIT_READY_GAP_MS, WAIT_READY_TIMEOUT_MS, waitReadyAttemptTimeoutMs } from "./wait-ready.js";
export {
  AGENT_MOUNT_POINT,
  AGENT_NODE_FLAGS,
  AGENT_PACKAGE_LAYOUT,
  agentLaunchArgv,
} from "./agent-launch.js";
export { claimAgent } from "./claim.js";
