import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

const run = (file: string, args: string[], cwd?: string) =>
  execFileSync(file, args, { stdio: ["ignore", "pipe", "pipe"], ...(cwd ? { cwd } : {}), encoding: "utf8" });

/** A tiny rootfs: static busybox with /bin/sh and a few applets; no uid 1000 user (the pull adds it). */
function busyboxRootfs(dir: string): void {
  for (const d of ["bin", "etc/opq", "tmp"]) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync("/usr/bin/busybox", join(dir, "bin/busybox"));
  chmodSync(join(dir, "bin/busybox"), 0o755);
  for (const a of [
    "sh",
    "cat",
    "ls",
    "echo",
    "env",
    "pwd",
    "id",
    "sync",
    "rm",
    "touch",
    "test",
    "stat",
    "true",
    "sleep",
    "kill",
    "dd",
  ]) {
    symlinkSync("busybox", join(dir, "bin", a));
  }
  writeFileSync(join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(dir, "etc/group"), "root:x:0:\n");
  writeFileSync(join(dir, "etc/deleteme"), "base file\n");
  writeFileSync(join(dir, "etc/keepme"), "kept\n");
  for (const f of ["a", "b"]) writeFileSync(join(dir, "etc/opq", f), `${f}\n`);
  mkdirSync(join(dir, "srv/app"), { recursive: true });
}

/** Adds a hand-written layer (tar of `files` relative to a temp dir) to `<layout>:<from>` as `<to>`. */
function addLayer(
  work: string,
  layout: string,
  from: string,
  to: string,
  files: Record<string, string>,
): void {
  const d = join(work, `layer-${to}`);
  rmSync(d, { recursive: true, force: true });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(d, path, ".."), { recursive: true });
    writeFileSync(join(d, path), content);
  }
  const tar = join(work, `layer-${to}.tar`);
  run("tar", ["-C", d, "--owner=0", "--group=0", "-cf", tar, ...Object.keys(files)]);
  run("umoci", ["raw", "add-layer", "--image", `${layout}:${from}`, "--tag", to, tar]);
}

function blobPath(layout: string, digest: string): string {
  return join(layout, "blobs", "sha256", digest.replace("sha256:", ""));
}

function refDigest(layout: string, tag: string): { digest: string; size: number } {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as {
    manifests: { digest: string; size: number; annotations?: Record<string, string> }[];
  };
  const m = index.manifests.find((x) => x.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!m) throw new Error(`no ${tag}`);
  return { digest: m.digest, size: m.size };
}

/**
 * Test images in one OCI layout `<work>/lay`, built with umoci from a busybox rootfs:
 * - `v1`: base, config Env FOO=bar, WorkingDir /srv/app, Cmd /bin/sh, User 1000;
 * - `v2`: + umoci layer deleting etc/deleteme (file whiteout) + a hand layer with an opaque
 *   whiteout on etc/opq (keeping only `c`) and etc/arch=amd64;
 * - `v2arm`: as v2 with etc/arch=arm64 and architecture arm64; `multi`: an index of v2 and v2arm;
 * - `nosh`: busybox as /bin/busybox only (no /bin/sh, no passwd): an image without a shell.
 */
export function buildTestImages(work: string): string {
  const lay = join(work, "lay");
  run("umoci", ["init", "--layout", lay]);
  run("umoci", ["new", "--image", `${lay}:base`]);
  const b1 = join(work, "b1");
  run("umoci", ["unpack", "--image", `${lay}:base`, b1]);
  busyboxRootfs(join(b1, "rootfs"));
  run("umoci", ["repack", "--image", `${lay}:v1raw`, b1]);
  run("umoci", [
    "config",
    "--image",
    `${lay}:v1raw`,
    "--config.env",
    "FOO=bar",
    "--config.env",
    "PATH=/bin",
    "--config.workingdir",
    "/srv/app",
    "--config.cmd",
    "/bin/sh",
    "--config.user",
    "1000",
    "--tag",
    "v1",
  ]);
  const b2 = join(work, "b2");
  run("umoci", ["unpack", "--image", `${lay}:v1`, b2]);
  rmSync(join(b2, "rootfs/etc/deleteme"));
  run("umoci", ["repack", "--image", `${lay}:v2del`, b2]);
  addLayer(work, lay, "v2del", "v2", {
    "etc/opq/.wh..wh..opq": "",
    "etc/opq/c": "c\n",
    "etc/arch": "amd64\n",
  });
  addLayer(work, lay, "v2del", "v2armraw", {
    "etc/opq/.wh..wh..opq": "",
    "etc/opq/c": "c\n",
    "etc/arch": "arm64\n",
  });
  run("umoci", ["config", "--image", `${lay}:v2armraw`, "--architecture", "arm64", "--tag", "v2arm"]);
  // The multi-platform index by hand (umoci makes none).
  const amd = refDigest(lay, "v2");
  const arm = refDigest(lay, "v2arm");
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...amd,
        platform: { os: "linux", architecture: "amd64" },
      },
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...arm,
        platform: { os: "linux", architecture: "arm64" },
      },
    ],
  });
  const digest = `sha256:${createHash("sha256").update(index).digest("hex")}`;
  writeFileSync(blobPath(lay, digest), index);
  const top = JSON.parse(readFileSync(join(lay, "index.json"), "utf8")) as { manifests: unknown[] };
  top.manifests.push({
    mediaType: "application/vnd.oci.image.index.v1+json",
    digest,
    size: Buffer.byteLength(index),
    annotations: { "org.opencontainers.image.ref.name": "multi" },
  });
  writeFileSync(join(lay, "index.json"), JSON.stringify(top));

  run("umoci", ["new", "--image", `${lay}:empty`]);
  const b3 = join(work, "b3");
  run("umoci", ["unpack", "--image", `${lay}:empty`, b3]);
  mkdirSync(join(b3, "rootfs/bin"), { recursive: true });
  copyFileSync("/usr/bin/busybox", join(b3, "rootfs/bin/busybox"));
  chmodSync(join(b3, "rootfs/bin/busybox"), 0o755);
  run("umoci", ["repack", "--image", `${lay}:nosh`, b3]);
  // A layer of its own (registries share blobs between repositories) for the tamper test.
  addLayer(work, lay, "empty", "tamper", { "etc/tamper": "t".repeat(4096) });
  return lay;
}

/** The digest of the last layer of `<layout>:<tag>`. */
export function lastLayerDigest(layout: string, tag: string): string {
  const manifest = JSON.parse(readFileSync(blobPath(layout, refDigest(layout, tag).digest), "utf8")) as {
    layers: { digest: string }[];
  };
  const last = manifest.layers.at(-1);
  if (!last) throw new Error(`${tag} has no layer`);
  return last.digest;
}

/**
 * A bigger image for benchmarks: `<layout>:v1` plus one layer holding a copy of `dataDir` under
 * /usr/share/bench (real files: Python's stdlib compresses like typical image content).
 */
export function addDataLayer(work: string, layout: string, from: string, to: string, dataDir: string): void {
  const b = join(work, `data-${to}`);
  run("umoci", ["unpack", "--image", `${layout}:${from}`, b]);
  mkdirSync(join(b, "rootfs/usr/share"), { recursive: true });
  run("cp", ["-a", dataDir, join(b, "rootfs/usr/share/bench")]);
  run("umoci", ["repack", "--image", `${layout}:${to}`, b]);
  rmSync(b, { recursive: true, force: true });
}

/** Pushes `<layout>:<tag>` to the registry (`--all` for an index). */
export function push(
  layout: string,
  tag: string,
  dest: string,
  options: { creds?: string; zstd?: boolean; netnsPath?: string } = {},
): void {
  const ns = options.netnsPath ? [`--net=${options.netnsPath}`, "--", "skopeo"] : [];
  run(ns.length > 0 ? "nsenter" : "skopeo", [
    ...ns,
    "copy",
    "--all",
    "--dest-tls-verify=false",
    ...(options.creds ? ["--dest-creds", options.creds] : []),
    ...(options.zstd ? ["--dest-compress", "--dest-compress-format", "zstd"] : []),
    `oci:${layout}:${tag}`,
    `docker://${dest}`,
  ]);
}

/** A docker-archive tarball of `<layout>:<tag>` (what `docker save` makes). */
export function dockerArchive(layout: string, tag: string, out: string, ref: string): void {
  run("skopeo", ["copy", `oci:${layout}:${tag}`, `docker-archive:${out}:${ref}`]);
}

export function ociArchive(layout: string, tag: string, out: string): void {
  run("skopeo", ["copy", `oci:${layout}:${tag}`, `oci-archive:${out}:${tag}`]);
}
