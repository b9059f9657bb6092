import type { ServerResponse } from "node:http";
import type { ShareClaims } from "./share-token.js";

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The page's headers. The CSP allows only the gateway's own script, styles and socket: no
 * inline script, nothing from elsewhere. Inline styles are allowed because xterm.js's DOM
 * renderer writes its cell styles into a <style> element it creates. No referrer: the token is
 * in the URL and must not leak to links opened from the terminal.
 */
export const SHARE_PAGE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; " +
    "img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Cache-Control": "no-store",
};

/** The web terminal page of one share (the script reads the token from its own path). */
export function sendSharePage(res: ServerResponse, claims: ShareClaims, head: boolean): void {
  const title = `bhatti · ${claims.sandboxId} · ${claims.sessionId}${claims.readOnly ? " (read-only)" : ""}`;
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/share/assets/share-page.css">
</head>
<body data-read-only="${claims.readOnly ? "true" : "false"}">
<div id="bar"><span id="title">${escapeHtml(title)}</span><span id="status">loading…</span></div>
<div id="terminal"></div>
<script src="/share/assets/share-page.js"></script>
</body>
</html>
`;
  res.writeHead(200, {
    ...SHARE_PAGE_HEADERS,
    "Content-Type": "text/html; charset=utf-8",
    "Content-Length": Buffer.byteLength(html),
  });
  res.end(head ? undefined : html);
}
