/**
 * (user, id-or-name) → sandbox id for the data path, so a hot exec does not ask the store who
 * owns a sandbox on every request. Entries are short-lived and dropped on rename and destroy
 * (the gateway makes both changes itself).
 */
export interface SandboxRefCache {
  get(userId: string, ref: string): string | undefined;
  set(userId: string, ref: string, sandboxId: string): void;
  /** Drops every entry pointing at the sandbox. */
  forget(sandboxId: string): void;
}

export function createSandboxRefCache(ttlMs = 5_000, maxEntries = 10_000, now = Date.now): SandboxRefCache {
  const entries = new Map<string, { id: string; expiresAt: number }>();
  const key = (userId: string, ref: string) => `${userId}\u0000${ref}`;
  return {
    get(userId, ref) {
      const e = entries.get(key(userId, ref));
      if (e === undefined) return undefined;
      if (e.expiresAt <= now()) {
        entries.delete(key(userId, ref));
        return undefined;
      }
      return e.id;
    },
    set(userId, ref, sandboxId) {
      if (entries.size >= maxEntries) {
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) entries.delete(oldest);
      }
      entries.set(key(userId, ref), { id: sandboxId, expiresAt: now() + ttlMs });
    },
    forget(sandboxId) {
      for (const [k, e] of entries) if (e.id === sandboxId) entries.delete(k);
    },
  };
}
