import { join } from "node:path";

/** The five bhatti processes. */
export const PROCESS_NAMES = ["store", "network", "vmm", "thermal", "gateway"] as const;
export type ProcessName = (typeof PROCESS_NAMES)[number];

/** The services that listen on Unix sockets (the gateway listens on TCP). */
export const SERVICE_NAMES = ["store", "network", "vmm", "thermal"] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** Where a service's Connect socket lives: `<socket_dir>/<name>.sock`. */
export function serviceSocketPath(socketDir: string, name: ServiceName): string {
  return join(socketDir, `${name}.sock`);
}
