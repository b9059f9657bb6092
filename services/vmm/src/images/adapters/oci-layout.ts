import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The parts of an OCI image config bhatti keeps (`config` in the image config blob). */
export interface OciRunConfig {
  env: string[];
  cmd: string[];
  entrypoint: string[];
  workingDir: string;
  user: string;
}

export interface OciLayoutImage {
  manifestDigest: string;
  layers: number;
  os: string;
  architecture: string;
  config: OciRunConfig;
}

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];

function blob(layout: string, digest: string): unknown {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new Error(`unsupported digest ${JSON.stringify(digest.slice(0, 80))}`);
  return JSON.parse(readFileSync(join(layout, "blobs", "sha256", m[1] ?? ""), "utf8"));
}

/** Reads the manifest and config of `<layout>:<tag>` (after skopeo wrote and verified them). */
export function readLayoutImage(layout: string, tag: string): OciLayoutImage {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as {
    manifests?: { digest?: string; annotations?: Record<string, string> }[];
  };
  const entry = (index.manifests ?? []).find(
    (m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag,
  );
  if (!entry?.digest) throw new Error(`OCI layout has no image tagged ${tag}`);
  const manifest = blob(layout, entry.digest) as { config?: { digest?: string }; layers?: unknown[] };
  const cfg = blob(layout, manifest.config?.digest ?? "") as {
    os?: string;
    architecture?: string;
    config?: Record<string, unknown>;
  };
  const c = cfg.config ?? {};
  return {
    manifestDigest: entry.digest,
    layers: Array.isArray(manifest.layers) ? manifest.layers.length : 0,
    os: cfg.os ?? "",
    architecture: cfg.architecture ?? "",
    config: {
      env: strings(c["Env"]),
      cmd: strings(c["Cmd"]),
      entrypoint: strings(c["Entrypoint"]),
      workingDir: typeof c["WorkingDir"] === "string" ? c["WorkingDir"] : "",
      user: typeof c["User"] === "string" ? c["User"] : "",
    },
  };
}
