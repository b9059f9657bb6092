import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildOciSpec } from "../engines/gvisor/oci-spec.js";
import { createImageRegistry } from "./image-registry.js";
import { ImageSettingsError, parseImageRunscSettings } from "./image-runsc-settings.js";

// The docker tier's settings, as images/docker/build.sh writes them.
const DOCKER = {
  flags: ["--net-raw"],
  mounts: [
    { destination: "/sys/fs/cgroup", type: "cgroup" },
    { destination: "/var/lib/docker", type: "tmpfs", options: ["size=2g"] },
  ],
};

describe("per-image runsc settings", () => {
  it("accepts the docker tier's settings", () => {
    expect(parseImageRunscSettings(DOCKER)).toEqual({
      flags: ["--net-raw"],
      mounts: [
        { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: [] },
        { destination: "/var/lib/docker", type: "tmpfs", source: "tmpfs", options: ["size=2g"] },
      ],
    });
    expect(parseImageRunscSettings(undefined)).toBeUndefined();
  });

  it.each([
    ["a flag outside the allowlist", { flags: ["--network=host"] }],
    ["a debug flag", { flags: ["--debug-log=/tmp/x"] }],
    ["a bind mount of a host path", { mounts: [{ destination: "/host", type: "bind", source: "/" }] }],
    ["a source for a tmpfs", { mounts: [{ destination: "/data", type: "tmpfs", source: "/etc" }] }],
    ["a mount over the agent", { mounts: [{ destination: "/.bhatti", type: "tmpfs" }] }],
    ["a mount over /etc", { mounts: [{ destination: "/etc/ssh", type: "tmpfs" }] }],
    ["a mount over /proc", { mounts: [{ destination: "/proc/sys", type: "tmpfs" }] }],
    ["a mount over the root", { mounts: [{ destination: "/", type: "tmpfs" }] }],
    ["a relative destination", { mounts: [{ destination: "var/lib", type: "tmpfs" }] }],
    ["a .. destination", { mounts: [{ destination: "/var/../etc", type: "tmpfs" }] }],
    ["cgroupfs elsewhere", { mounts: [{ destination: "/cg", type: "cgroup" }] }],
    [
      "an unknown mount option",
      { mounts: [{ destination: "/data", type: "tmpfs", options: ["exec,suid"] }] },
    ],
    ["an unknown key", { caps: ["CAP_SYS_MODULE"] }],
    ["two mounts at one place", { mounts: [DOCKER.mounts[1], DOCKER.mounts[1]] }],
    ["not an object", ["--net-raw"]],
  ])("refuses %s", (_why, raw) => {
    expect(() => parseImageRunscSettings(raw)).toThrow(ImageSettingsError);
  });

  it("the OCI spec carries the image's mounts after the engine's own", () => {
    const settings = parseImageRunscSettings(DOCKER);
    const spec = buildOciSpec({
      rootfs: "/r",
      hostname: "h",
      argv: ["/init"],
      netnsPath: "/run/netns/x",
      cgroupsPath: "/x",
      cpus: 1,
      memoryMb: 256,
      pidsLimit: 100,
      agentMountPoint: "/.bhatti",
      bootDir: "/b",
      bootMountPoint: "/.bhatti-boot",
      ...(settings ? { imageMounts: settings.mounts } : {}),
    }) as { mounts: { destination: string; type: string }[] };
    const destinations = spec.mounts.map((m) => m.destination);
    expect(destinations.slice(-2)).toEqual(["/sys/fs/cgroup", "/var/lib/docker"]);
    expect(destinations.indexOf("/sys")).toBeLessThan(destinations.indexOf("/sys/fs/cgroup"));
  });
});

describe("the image registry reads the settings and the boot hook from image.json", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  const image = (name: string, meta: Record<string, unknown>) => {
    dir ??= mkdtempSync(join(tmpdir(), "bhatti-test-images-"));
    mkdirSync(join(dir, name, "rootfs", "bin"), { recursive: true });
    writeFileSync(join(dir, name, "rootfs", "bin", "sh"), "");
    writeFileSync(join(dir, name, "image.json"), JSON.stringify({ name, ...meta }));
    return dir;
  };

  it("lists a tier with its settings, its init and its description", () => {
    const images = createImageRegistry(
      image("docker", { description: "Docker", size_bytes: 5, runsc: DOCKER, init: "sudo -n /x" }),
    );
    const docker = images.get("docker");
    expect(docker?.description).toBe("Docker");
    expect(docker?.init).toBe("sudo -n /x");
    expect(docker?.runsc?.flags).toEqual(["--net-raw"]);
    expect(images.list().map((i) => i.name)).toEqual(["docker"]);
  });

  it("an image without settings has none", () => {
    const images = createImageRegistry(image("plain", {}));
    expect(images.get("plain")?.runsc).toBeUndefined();
    expect(images.get("plain")?.init).toBeUndefined();
  });

  it("an image whose settings the engine refuses is not usable", () => {
    const images = createImageRegistry(image("bad", { runsc: { flags: ["--network=host"] } }));
    image("good", {});
    expect(images.get("bad")).toBeUndefined();
    expect(images.list().map((i) => i.name)).toEqual(["good"]);
  });
});
