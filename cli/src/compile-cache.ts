/**
 * Where `bhatti` keeps Node's compile cache: `$XDG_CACHE_HOME/bhatti/compile-cache`, else
 * `~/.cache/bhatti/compile-cache`. Undefined (run without a cache) when it cannot be created or is
 * not a private directory of this user: code loaded from a cache someone else can write would be
 * theirs to choose. `BHATTI_COMPILE_CACHE=0` turns it off.
 */
export function compileCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env["BHATTI_COMPILE_CACHE"] === "0") return undefined;
  // getBuiltinModule, not imports: the launcher's bundle would set up its lazy stubs of fs, os
  // and path for every command, `bhatti version` included, which uses none of them.
  const { lstatSync, mkdirSync } = process.getBuiltinModule("node:fs");
  const { homedir } = process.getBuiltinModule("node:os");
  const { join } = process.getBuiltinModule("node:path");
  try {
    const xdg = env["XDG_CACHE_HOME"];
    const base = xdg?.startsWith("/") ? xdg : join(homedir(), ".cache");
    const dir = join(base, "bhatti", "compile-cache");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const uid = process.geteuid?.();
    for (const d of [join(base, "bhatti"), dir]) {
      const st = lstatSync(d);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
        return undefined;
      }
    }
    return dir;
  } catch {
    return undefined;
  }
}
