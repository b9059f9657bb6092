import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ToolRunOptions, runTool } from "./tool-process.js";

/** Where skopeo reads an image from: a registry, or a tarball on this host. */
export type ImageSource =
  | {
      kind: "registry";
      ref: string;
      /** The registry host[:port] of `ref` ("docker.io" when it names none): the credentials' key. */
      registry: string;
      tlsVerify: boolean;
      /** user:token; handed to skopeo in a 0600 auth file, never on its command line (ps shows that). */
      creds?: string;
      platform?: Platform;
    }
  | { kind: "docker-archive" | "oci-archive"; path: string };

export interface Platform {
  os: string;
  arch: string;
  variant?: string;
}

/** What `skopeo inspect` says about a registry image (for the chosen platform). */
export interface RemoteImage {
  /** The manifest digest: a repeat pull with the same one is a no-op. */
  digest: string;
  layers: number;
}

function transport(src: ImageSource): string {
  return src.kind === "registry" ? `docker://${src.ref}` : `${src.kind}:${src.path}`;
}

/**
 * Runs `fn` with the source's flags. Credentials go into a containers-auth.json of their own (in a
 * 0700 temp dir, removed afterwards), so they never appear in a process list.
 */
async function withSourceFlags<T>(
  src: ImageSource,
  prefix: "--src-" | "--",
  fn: (flags: string[]) => Promise<T>,
): Promise<T> {
  if (src.kind !== "registry") return fn([]);
  const flags = [`${prefix}tls-verify=${src.tlsVerify}`];
  if (src.creds === undefined) return fn(flags);
  const dir = mkdtempSync(join(tmpdir(), "bhatti-skopeo-auth-"));
  try {
    const file = join(dir, "auth.json");
    const auth = Buffer.from(src.creds).toString("base64");
    writeFileSync(file, JSON.stringify({ auths: { [src.registry]: { auth } } }), { mode: 0o600 });
    return await fn([...flags, `${prefix}authfile`, file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function platformFlags(src: ImageSource): string[] {
  if (src.kind !== "registry" || src.platform === undefined) return [];
  const p = src.platform;
  return [
    "--override-os",
    p.os,
    "--override-arch",
    p.arch,
    ...(p.variant === undefined ? [] : ["--override-variant", p.variant]),
  ];
}

/**
 * skopeo (containers/image): the registry client (auth, manifest lists, platform choice, digest
 * checks). Never fed a shared OCI layout from two copies at once (containers/image#1028): each
 * task copies into a layout of its own.
 */
export interface Skopeo {
  inspect(src: ImageSource & { kind: "registry" }, options: ToolRunOptions): Promise<RemoteImage>;
  /**
   * Copies the image into `<layout>:<tag>`. Layers are stored gzip (zstd ones recompressed, since
   * umoci 0.4.7 cannot read zstd; gzip ones pass through unchanged).
   */
  copy(src: ImageSource, layout: string, tag: string, options: ToolRunOptions): Promise<void>;
}

export function createSkopeo(path = "skopeo"): Skopeo {
  return {
    async inspect(src, options) {
      const out = await withSourceFlags(src, "--", (flags) =>
        runTool(path, [...platformFlags(src), "inspect", ...flags, transport(src)], options),
      );
      const j = JSON.parse(out) as { Digest?: unknown; Layers?: unknown };
      return {
        digest: typeof j.Digest === "string" ? j.Digest : "",
        layers: Array.isArray(j.Layers) ? j.Layers.length : 0,
      };
    },
    async copy(src, layout, tag, options) {
      await withSourceFlags(src, "--src-", (flags) =>
        runTool(
          path,
          [
            ...platformFlags(src),
            "copy",
            ...flags,
            "--dest-compress",
            "--dest-compress-format",
            "gzip",
            transport(src),
            `oci:${layout}:${tag}`,
          ],
          options,
        ),
      );
    },
  };
}
