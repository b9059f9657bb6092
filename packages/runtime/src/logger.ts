import { currentRequestId } from "./request-context.js";

export type LogLevel = "debug" | "info" | "warn" | "error";

const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** The process name, e.g. "store"; becomes the `service` field. */
  service: string;
  level?: LogLevel;
  /** Where lines go; stderr by default, so stdout stays free for command output. */
  write?: (line: string) => void;
}

export function isLogLevel(value: string): value is LogLevel {
  return value in levelRank;
}

/**
 * Creates a logger that writes one JSON object per line. The request id of the
 * current Connect call (see request-context.ts) is added automatically so a
 * request can be followed across processes.
 */
export function createLogger(options: LoggerOptions): Logger {
  const threshold = levelRank[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (levelRank[level] < threshold) return;
      const line: LogFields = { ts: new Date().toISOString(), level, service: options.service, msg };
      const requestId = currentRequestId();
      if (requestId !== undefined) line["request_id"] = requestId;
      Object.assign(line, base, fields);
      write(`${JSON.stringify(line, errorReplacer)}\n`);
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}

// Errors have no enumerable properties; log their message and stack instead of {}.
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}
