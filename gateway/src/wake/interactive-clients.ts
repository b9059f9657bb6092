/**
 * Live interactive clients (CLI shell, web shell, piped-exec WebSocket) per sandbox. The
 * count is the host's own knowledge, unlike the agent's guest-reported attached sessions,
 * so the thermal manager can trust it to pin a sandbox hot.
 */
export interface InteractiveClients {
  /** Registers one client; call the returned function once when it goes away. */
  attach(sandboxId: string): () => void;
  count(sandboxId: string): number;
  /** Sandboxes with at least one client. */
  pinned(): string[];
}

export function createInteractiveClients(onChange: (sandboxId: string) => void): InteractiveClients {
  const counts = new Map<string, number>();
  return {
    attach(sandboxId) {
      counts.set(sandboxId, (counts.get(sandboxId) ?? 0) + 1);
      onChange(sandboxId);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const n = (counts.get(sandboxId) ?? 1) - 1;
        // Deleting the key (not storing 0) keeps the map bounded by live sandboxes.
        if (n <= 0) counts.delete(sandboxId);
        else counts.set(sandboxId, n);
        onChange(sandboxId);
      };
    },
    count: (sandboxId) => counts.get(sandboxId) ?? 0,
    pinned: () => [...counts.keys()],
  };
}
