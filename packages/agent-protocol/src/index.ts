export {
  AGENT_CONTROL_PORT,
  AGENT_FORWARD_PORT,
  FrameType,
  formatTypeByte,
  frameTypeName,
  type FrameTypeCode,
  type FrameTypeName,
} from "./frame-types.js";
export {
  FRAME_HEADER_SIZE,
  FrameDecoder,
  FrameError,
  MAX_FRAME_SIZE,
  MAX_PAYLOAD_SIZE,
  decodeExitPayload,
  decodeResizePayload,
  decodeSignalPayload,
  encodeExitPayload,
  encodeFrame,
  encodeJsonFrame,
  encodeResizePayload,
  encodeSignalPayload,
  tryParseFrame,
  unexpectedFrameText,
  type Frame,
  type FrameErrorKind,
  type ParsedFrame,
  type TerminalSize,
} from "./frame-codec.js";
export { FrameReadTimeoutError, FrameReader, type FrameReaderOptions } from "./frame-reader.js";
export type {
  ActivityInfo,
  DetachedExecResult,
  ExecKillRequest,
  ExecRequest,
  FileInfo,
  FilePathRequest,
  FileReadRequest,
  FileReadResponse,
  FileWriteRequest,
  ForwardRequest,
  ForwardResponse,
  SessionInfo,
  StatusResponse,
} from "./schemas.js";
export { AgentLimits, ErrorText, errorTextFor } from "./error-texts.js";
export {
  DEFAULT_SANDBOX_USER,
  DEFAULT_SUDO_SOCKET,
  DEFAULT_WORKDIR,
  type AgentBootConfig,
  type AgentBootSudo,
  type AgentBootFile,
  type AgentBootUser,
} from "./boot-config.js";
export { EXEC_OUTPUT_CAP_BYTES, EXEC_OUTPUT_TRUNCATION_NOTE } from "./exec-output.js";
export { type ClaimRequest, parseClaimRequest } from "./claim.js";
