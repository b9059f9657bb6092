// The agent's v1 session and file records as the public proto messages. The Connect service
// returns these; the REST routes print them through @bhatti/proto/rest-json, as `bhatti --json` does.
import { type FileInfo, FileInfoSchema, type SessionInfo, SessionInfoSchema } from "@bhatti/proto";
import type { FileInfo as AgentFileInfo, SessionInfo as AgentSessionInfo } from "@bhatti/agent-protocol";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";

export function fileInfoMessage(f: AgentFileInfo): FileInfo {
  return create(FileInfoSchema, {
    name: f.name,
    size: BigInt(f.size),
    mode: f.mode,
    isDir: f.is_dir,
    modifiedAt: timestampFromMs(f.mtime * 1000),
  });
}

export function sessionInfoMessage(s: AgentSessionInfo): SessionInfo {
  return create(SessionInfoSchema, {
    sessionId: s.session_id,
    command: s.argv,
    tty: s.tty,
    running: s.running,
    attached: s.attached,
    ...(s.exit_code !== undefined ? { exitCode: s.exit_code } : {}),
    createdAt: timestampFromMs(s.created_at * 1000),
  });
}
