/** Every event type the store accepts; anything else is refused so typos cannot hide. */
export const EVENT_TYPES = [
  "sandbox.created",
  "sandbox.destroyed",
  "sandbox.updated",
  "sandbox.stopped",
  "sandbox.started",
  "thermal.pause",
  "thermal.force_pause",
  "thermal.snapshot",
  "thermal.snapshot_failed",
  "thermal.wake",
  "shell.session",
  "exec.piped_session",
  "snapshot.created",
  "snapshot.deleted",
  "snapshot.resumed",
  "image.pulled",
  "image.pull_failed",
  "image.saved",
  "image.deleted",
  "volume.created",
  "volume.deleted",
  "volume.backup_failed",
  "auth.failed",
  "proxy.error",
  "forward.start",
  "user.created",
  "user.deleted",
  "user.key_rotated",
  "user.limits_updated",
  "secret.set",
  "secret.deleted",
  "daemon.started",
  "daemon.shutdown",
  "backup.created",
  "network.error",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

const known = new Set<string>(EVENT_TYPES);

export function isEventType(value: string): value is EventType {
  return known.has(value);
}
