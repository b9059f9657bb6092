export { BHATTI_VERSION } from "./version.js";
export {
  createLogger,
  isLogLevel,
  type LogFields,
  type LogLevel,
  type Logger,
  type LoggerOptions,
} from "./logger.js";
export {
  REQUEST_ID_HEADER,
  currentRequestId,
  newRequestId,
  sanitizeRequestId,
  withRequestId,
} from "./request-context.js";
export {
  ConfigError,
  DEFAULT_CONFIG_FILE,
  configKeys,
  configToFlags,
  envNameOf,
  flagNameOf,
  loadConfig,
  parseDurationMs,
  renderConfigReference,
  type ConfigKey,
  type ConfigToFlagsOptions,
  type LoadConfigOptions,
  type LoadedConfig,
  type ServerConfig,
} from "./config.js";
export { MAX_SOCKET_PATH_BYTES, SocketInUseError, isSocketLive, reclaimSocketPath } from "./unix-socket.js";
export { RPC_HTTP_VERSION_ENV, type RpcHttpVersion, rpcHttpVersion } from "./rpc-http-version.js";
export {
  RPC_SERVER_KEEP_ALIVE_MS,
  requestContextInterceptor,
  startConnectServer,
  type ConnectServer,
  type ConnectServerOptions,
} from "./connect-server.js";
export {
  RPC_CLIENT_IDLE_MS,
  ServiceUnreachableError,
  createServiceClient,
  isServiceUnreachable,
  type ServiceClient,
  type ServiceClientOptions,
} from "./connect-client.js";
export { HEALTH_PROBE_TIMEOUT_MS, healthProbeTimeoutMs } from "./rpc-deadlines.js";
export { installShutdown, type ShutdownController, type ShutdownStep } from "./shutdown.js";
export { processHealth, type DependencyStatus } from "./health.js";
export {
  PROCESS_NAMES,
  SERVICE_NAMES,
  serviceSocketPath,
  type ProcessName,
  type ServiceName,
} from "./service-paths.js";
export {
  StartupError,
  ensureWritableDir,
  runService,
  type ServiceContext,
  type ServiceDefinition,
} from "./service-main.js";
export { parseListenAddress, type ListenAddress } from "./listen-address.js";
export { crashPoint, crashPointsArmed } from "./crash-point.js";
export { UNCAUGHT_EXCEPTION_EXIT_CODE, installProcessFaultPolicy } from "./process-faults.js";
export { createUndoStack, type UndoFailure, type UndoStack } from "./undo-stack.js";
export { requireSandboxId } from "./sandbox-id.js";
export { formatDuration } from "./format-duration.js";
export { createKeyedLock, type KeyedLock } from "./keyed-lock.js";
export { createSingleFlight, type SingleFlight } from "./single-flight.js";
