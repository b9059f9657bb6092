import { isIP } from "node:net";
import type { Platform } from "../adapters/skopeo.js";

/** An image name in bhatti (a directory under images/). */
export const IMAGE_NAME_RULE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export class ImageInputError extends Error {
  override readonly name = "ImageInputError";
}

export interface ParsedRef {
  /** The reference as given (skopeo normalises docker.io names itself). */
  ref: string;
  /** The registry host[:port], or "docker.io" when the reference names none. */
  registry: string;
  repository: string;
  tag: string;
}

const REF_RULE = /^[a-zA-Z0-9][a-zA-Z0-9._:/@+-]{0,254}$/;

/** Splits a reference as Docker does: the first part is a registry when it has a dot, a colon or is localhost. */
export function parseImageRef(ref: string): ParsedRef {
  if (!REF_RULE.test(ref) || ref.includes("//")) {
    throw new ImageInputError(`invalid image reference ${JSON.stringify(ref.slice(0, 80))}`);
  }
  const slash = ref.indexOf("/");
  const first = slash === -1 ? "" : ref.slice(0, slash);
  const hasRegistry = first !== "" && (first.includes(".") || first.includes(":") || first === "localhost");
  const registry = hasRegistry ? first : "docker.io";
  const rest = hasRegistry ? ref.slice(slash + 1) : ref;
  const at = rest.indexOf("@");
  const named = at === -1 ? rest : rest.slice(0, at);
  const colon = named.lastIndexOf(":");
  const repository = colon === -1 ? named : named.slice(0, colon);
  const tag = at !== -1 ? rest.slice(at + 1) : colon === -1 ? "latest" : named.slice(colon + 1);
  if (repository === "") throw new ImageInputError(`invalid image reference ${JSON.stringify(ref)}`);
  return { ref, registry, repository, tag };
}

/** Loopback registries are reached over plain HTTP, as Docker does. */
export function isLoopbackRegistry(registry: string): boolean {
  let host = registry;
  if (host.startsWith("[")) host = host.slice(1, host.indexOf("]"));
  else if (host.split(":").length === 2) host = host.slice(0, host.lastIndexOf(":"));
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** The default bhatti name of a pulled image: the repository's last part, plus the tag unless "latest". */
export function defaultImageName(parsed: ParsedRef): string {
  const base = parsed.repository.split("/").pop() ?? "image";
  const tag = parsed.tag.startsWith("sha256:") ? parsed.tag.slice(7, 19) : parsed.tag;
  const raw = tag === "latest" ? base : `${base}-${tag}`;
  return raw
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 63);
}

export function parsePlatform(value: string): Platform | undefined {
  if (value === "") return undefined;
  const [os, arch, variant, extra] = value.split("/");
  if (!os || !arch || extra !== undefined || !/^[a-z0-9_]+$/.test(os + arch + (variant ?? ""))) {
    throw new ImageInputError(
      `invalid platform ${JSON.stringify(value.slice(0, 40))}: use os/arch[/variant]`,
    );
  }
  return variant ? { os, arch, variant } : { os, arch };
}

export function checkImageName(name: string): string {
  if (!IMAGE_NAME_RULE.test(name)) {
    throw new ImageInputError(
      `invalid image name ${JSON.stringify(name.slice(0, 80))}: must match ${IMAGE_NAME_RULE.source}`,
    );
  }
  return name;
}
