import { describe, expect, it } from "vitest";
import { parseSudoArgs } from "./sudo-options.js";
import { buildSudoCommand, escapeForShell, withSecurePath, type SudoCaller } from "./sudo-request.js";

const caller: SudoCaller = {
  name: "lohar",
  uid: 1000,
  gid: 1000,
  cwd: "/workspace/app",
  env: {
    PATH: "/home/lohar/.local/bin:/usr/local/bin:/usr/bin:/bin",
    HOME: "/home/lohar",
    USER: "lohar",
    TERM: "xterm-256color",
    LANG: "en_US.UTF-8",
    LC_ALL: "C.UTF-8",
    API_KEY: "secret",
    LD_PRELOAD: "/evil.so",
    SHELL: "/bin/zsh",
  },
};
const root = { name: "root", home: "/root", shell: "/bin/bash" };

function build(argv: string[]) {
  const parsed = parseSudoArgs(argv);
  if (parsed.kind !== "run") throw new Error("not a run");
  return buildSudoCommand(parsed.run, caller, root);
}

describe("the command sudo asks the agent to run", () => {
  it("resets the environment like sudo: keeps TERM, PATH and locale, sets root's identity and SUDO_*", () => {
    const c = build(["id", "-u"]);
    expect(c.argv).toEqual(["id", "-u"]);
    expect(c.cwd).toBe("/workspace/app");
    expect(c.env).toEqual({
      TERM: "xterm-256color",
      LANG: "en_US.UTF-8",
      LC_ALL: "C.UTF-8",
      PATH: "/home/lohar/.local/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
      HOME: "/root",
      USER: "root",
      LOGNAME: "root",
      SHELL: "/bin/bash",
      MAIL: "/var/mail/root",
      SUDO_USER: "lohar",
      SUDO_UID: "1000",
      SUDO_GID: "1000",
      SUDO_COMMAND: "id -u",
    });
  });

  it("-E keeps everything (HOME too) except the loader's variables; -H still sets HOME", () => {
    const e = build(["-E", "env"]).env;
    expect(e).toMatchObject({ API_KEY: "secret", HOME: "/home/lohar", USER: "root", SUDO_USER: "lohar" });
    expect(e["LD_PRELOAD"]).toBeUndefined();
    expect(build(["-EH", "env"]).env["HOME"]).toBe("/root");
  });

  it("--preserve-env=LIST keeps only those on top of the reset; VAR=value words win", () => {
    const e = build(["--preserve-env=API_KEY", "DEBIAN_FRONTEND=noninteractive", "env"]).env;
    expect(e["API_KEY"]).toBe("secret");
    expect(e["DEBIAN_FRONTEND"]).toBe("noninteractive");
    expect(e["SHELL"]).toBe("/bin/bash");
    expect(build(["HOME=/x", "env"]).env["HOME"]).toBe("/x");
  });

  it("-i runs root's login shell in root's home; -s runs the caller's $SHELL here", () => {
    expect(build(["-i"])).toMatchObject({ argv: ["/bin/bash", "-l"], cwd: "/root" });
    expect(build(["-i", "echo", "$HOME", "a b"]).argv).toEqual(["/bin/bash", "-l", "-c", "echo $HOME a\\ b"]);
    expect(build(["-s"])).toMatchObject({ argv: ["/bin/zsh"], cwd: "/workspace/app" });
    expect(build(["-s", "ls", "/"]).argv).toEqual(["/bin/zsh", "-c", "ls \\/"]);
    expect(build(["-E", "-i", "env"]).env["API_KEY"]).toBeUndefined();
  });

  it("-D sets the working directory", () => {
    expect(build(["-D", "/srv", "pwd"]).cwd).toBe("/srv");
  });

  it("escapes for the shell the way sudo does", () => {
    expect(escapeForShell(["a_b-c$D", "x y", "'q'", 'a"b', "é;"])).toBe(
      "a_b-c$D x\\ y \\'q\\' a\\\"b \\é\\;",
    );
  });

  it("adds secure_path's directories the caller's PATH lacks, in order, without duplicates", () => {
    expect(withSecurePath("/usr/bin:/bin")).toBe(
      "/usr/bin:/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin",
    );
    expect(withSecurePath(undefined)).toBe("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  });
});
