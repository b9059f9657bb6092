/** `^[a-z0-9][a-z0-9-]{0,62}$`: the alias rule of v1 §5.8 (the store enforces it on publish). */
const ALIAS_LABEL = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * v1's reserved names (the store refuses them as aliases). Under the zone they are never an
 * alias, so the API can live at e.g. `api.<proxy_zone>` on the same listener.
 */
export const RESERVED_ALIASES: ReadonlySet<string> = new Set([
  "www",
  "mail",
  "admin",
  "status",
  "ns1",
  "ns2",
  "api",
  "app",
  "_acme-challenge",
]);

/** The Host header without its port, lowercased (IPv6 literals keep their brackets). */
export function hostnameOf(hostHeader: string | undefined): string {
  const host = (hostHeader ?? "").trim().toLowerCase();
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.lastIndexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}

/**
 * The alias a Host header names in domain mode (`<alias>.<zone>`, one label), or undefined
 * when the host is not under the zone. A deeper name under the zone is "" (unknown host).
 */
export function aliasOfHost(hostHeader: string | undefined, zone: string): string | undefined {
  const host = hostnameOf(hostHeader).replace(/\.$/, "");
  const suffix = `.${zone.toLowerCase()}`;
  if (!host.endsWith(suffix)) return undefined;
  const label = host.slice(0, -suffix.length);
  return ALIAS_LABEL.test(label) ? label : "";
}

/** Path mode: `/<alias>/rest?q` → alias and the path the app sees; `/<alias>` needs a redirect. */
export function aliasOfPath(rawUrl: string): { alias: string; path: string; redirect: boolean } | undefined {
  const m = /^\/([^/?#]+)(\/[^?#]*)?(\?[^#]*)?/.exec(rawUrl);
  if (m === null) return undefined;
  const alias = (m[1] ?? "").toLowerCase();
  if (!ALIAS_LABEL.test(alias)) return undefined;
  const rest = m[2];
  const query = m[3] ?? "";
  return rest === undefined
    ? { alias, path: `/${alias}/${query}`, redirect: true }
    : { alias, path: `${rest}${query}`, redirect: false };
}

/** The authenticated proxy: `/sandboxes/<ref>/proxy/<port>[/rest]` (`ref` still percent-encoded). */
export function ownerProxyPath(
  rawUrl: string,
): { ref: string; port: string; path: string; redirect: boolean } | undefined {
  const m = /^\/sandboxes\/([^/?#]+)\/proxy\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?/.exec(rawUrl);
  if (m === null) return undefined;
  const query = m[4] ?? "";
  const base = `/sandboxes/${m[1]}/proxy/${m[2]}`;
  return m[3] === undefined
    ? { ref: m[1] ?? "", port: m[2] ?? "", path: `${base}/${query}`, redirect: true }
    : { ref: m[1] ?? "", port: m[2] ?? "", path: `${m[3]}${query}`, redirect: false };
}
