import { chownSync, chmodSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TaskFailure } from "./image-tasks.js";

/** The sandbox user every image runs commands as (the agent's choice, as in v1). */
export const SANDBOX_UID = 1000;
const DEFAULT_USER = "lohar";

const exists = (p: string) => {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

/**
 * `root/rel` for writing, refusing a path that would leave the image: the image is untrusted,
 * and a symlinked /etc (say, to /etc) would make the host's files the target. Missing parent
 * dirs are created; a symlink at the leaf is removed (the caller writes a regular file or dir).
 */
function inside(root: string, rel: string, leaf: "file" | "dir"): string {
  const parts = rel.split("/").filter((p) => p !== "");
  let at = root;
  for (const [i, part] of parts.entries()) {
    at = join(at, part);
    const last = i === parts.length - 1;
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(at);
    } catch {
      st = undefined;
    }
    if (st?.isSymbolicLink()) {
      if (!last) throw new TaskFailure(`the image's /${parts.slice(0, i + 1).join("/")} is a symbolic link`);
      rmSync(at);
      st = undefined;
    }
    if (st === undefined) {
      if (!last || leaf === "dir") mkdirSync(at, { mode: 0o755 });
    } else if (!last && !st.isDirectory()) {
      throw new TaskFailure(`the image's /${parts.slice(0, i + 1).join("/")} is not a directory`);
    } else if (last && leaf === "dir" && !st.isDirectory()) {
      throw new TaskFailure(`the image's /${rel} is not a directory`);
    }
  }
  return at;
}

function readText(path: string): string {
  try {
    return lstatSync(path).isFile() ? readFileSync(path, "utf8") : "";
  } catch {
    return "";
  }
}

const appendLine = (text: string, line: string) =>
  `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${line}\n`;

/**
 * What the agent needs in any image: the mount points, the uid 1000 user (kept if the image has
 * one, e.g. `node`; else `lohar` is added by editing passwd/group directly: the image may have
 * no shell or useradd) with its home, and /workspace owned by it. Returns the user's name.
 */
export function injectAgentNeeds(rootfs: string): string {
  for (const d of ["proc", "sys", "dev", "run", ".bhatti", ".bhatti-boot"]) inside(rootfs, d, "dir");
  chmodSync(inside(rootfs, "tmp", "dir"), 0o1777);
  for (const f of ["etc/resolv.conf", "etc/hosts"]) {
    const p = inside(rootfs, f, "file");
    if (!exists(p)) writeFileSync(p, "", { mode: 0o644 });
  }

  const passwdPath = inside(rootfs, "etc/passwd", "file");
  let passwd = readText(passwdPath);
  if (!/^root:/m.test(passwd)) passwd = appendLine(passwd, "root:x:0:0:root:/root:/bin/sh");
  let user = DEFAULT_USER;
  let home = `/home/${DEFAULT_USER}`;
  const existing = passwd.split("\n").find((l) => l.split(":")[2] === String(SANDBOX_UID));
  if (existing) {
    const f = existing.split(":");
    user = f[0] ?? DEFAULT_USER;
    home = f[5] || home;
  } else {
    passwd = appendLine(
      passwd,
      `${DEFAULT_USER}:x:${SANDBOX_UID}:${SANDBOX_UID}:${DEFAULT_USER}:${home}:/bin/sh`,
    );
  }
  writeFileSync(passwdPath, passwd, { mode: 0o644 });

  const groupPath = inside(rootfs, "etc/group", "file");
  let group = readText(groupPath);
  if (!/^root:/m.test(group)) group = appendLine(group, "root:x:0:");
  if (!group.split("\n").some((l) => l.split(":")[2] === String(SANDBOX_UID))) {
    group = appendLine(group, `${user}:x:${SANDBOX_UID}:`);
  }
  writeFileSync(groupPath, group, { mode: 0o644 });

  for (const d of [home, "/workspace"]) {
    const p = inside(rootfs, d, "dir");
    chownSync(p, SANDBOX_UID, SANDBOX_UID);
  }
  return user;
}
