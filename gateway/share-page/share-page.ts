// The share page's terminal (served by the gateway at /share/<token>, bundled by scripts/build.mjs
// into gateway/dist/share-page/). It speaks the TTY shell protocol of /sandboxes/:id/ws on
// /share/<token>/ws: output in binary frames, keystrokes out, `{"type":"resize"}` text frames.
// After a network blip it reconnects with backoff; the server replays the scrollback on attach,
// so the terminal is cleared first. Close 1000 (the shell exited) and 1008 (revoked, expired) end it.
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";

const token = location.pathname.split("/")[2] ?? "";
const readOnly = document.body.dataset["readOnly"] === "true";
const statusEl = document.getElementById("status") as HTMLElement;
const setStatus = (text: string, state: "connecting" | "live" | "lost" | "ended") => {
  statusEl.textContent = text;
  statusEl.dataset["state"] = state;
  document.body.dataset["state"] = state;
};

const term = new Terminal({
  cursorBlink: !readOnly,
  disableStdin: readOnly,
  convertEol: false,
  scrollback: 5000,
  fontFamily: "ui-monospace, Menlo, Consolas, monospace",
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById("terminal") as HTMLElement);
fit.fit();
// For tests and debugging: the terminal's buffer is the rendered text.
(window as unknown as { bhattiTerminal: Terminal }).bhattiTerminal = term;

let ws: WebSocket | undefined;
/** The current socket's session is attached (its input is read). */
let attached = false;
let attempt = 0;
let ended = false;
let connects = 0;
let retry: ReturnType<typeof setTimeout> | undefined;

const sendResize = () => {
  if (readOnly || !attached || ws?.readyState !== WebSocket.OPEN) return;
  ws.send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
};

term.onData((data) => {
  if (!readOnly && attached && ws?.readyState === WebSocket.OPEN) ws.send(new TextEncoder().encode(data));
});
term.onResize(sendResize);
window.addEventListener("resize", () => fit.fit());

/** After a socket that never opened: is the link itself refused (401)? Then stop retrying. */
const linkRefused = async (): Promise<string | undefined> => {
  try {
    const res = await fetch(location.pathname, { method: "GET", cache: "no-store" });
    if (res.status !== 401) return undefined;
    const body = (await res.json().catch(() => ({}))) as { error?: string };
    return body.error ?? "share link refused";
  } catch {
    return undefined;
  }
};

const connect = () => {
  clearTimeout(retry);
  retry = undefined;
  if (ended) return;
  setStatus(connects === 0 ? "connecting…" : "reconnecting…", "connecting");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${proto}//${location.host}/share/${token}/ws`);
  socket.binaryType = "arraybuffer";
  ws = socket;
  let opened = false;
  let first = true;
  let lastError = "";
  attached = false;
  socket.onopen = () => {
    opened = true;
  };
  socket.onmessage = (ev: MessageEvent) => {
    if (typeof ev.data === "string") {
      // `{"type":"session"}` first: the session is attached and input is read from now on.
      if (ev.data.startsWith('{"type":"session"')) {
        attempt = 0;
        connects++;
        attached = true;
        setStatus(readOnly ? "live (read-only)" : "live", "live");
        sendResize();
        return;
      }
      if (ev.data.startsWith("{")) return;
      lastError = ev.data;
      term.write(`\r\n${ev.data}\r\n`);
      return;
    }
    if (first) {
      // The attach replays the scrollback: start from a clean screen so nothing is doubled.
      first = false;
      term.reset();
    }
    term.write(new Uint8Array(ev.data as ArrayBuffer));
  };
  socket.onclose = (ev: CloseEvent) => {
    if (ws !== socket) return;
    // The shared shell is gone (exited and reaped): retrying cannot bring it back.
    const sessionGone = ev.code === 1011 && /session not found/.test(lastError);
    if (ev.code === 1000 || ev.code === 1008 || sessionGone) {
      ended = true;
      setStatus(
        ev.code === 1008 ? `closed: ${ev.reason || "link no longer valid"}` : "session ended",
        "ended",
      );
      return;
    }
    void (async () => {
      const refused = opened ? undefined : await linkRefused();
      if (refused !== undefined) {
        ended = true;
        setStatus(refused, "ended");
        return;
      }
      // 0.5 s doubling to 10 s, with jitter so many viewers do not come back in step.
      const delay = Math.min(10_000, 500 * 2 ** attempt) * (0.75 + Math.random() / 2);
      attempt++;
      setStatus(`connection lost; retrying in ${Math.round(delay / 1000)} s`, "lost");
      retry = setTimeout(connect, delay);
    })();
  };
};

// Back online: try at once rather than wait out the backoff.
window.addEventListener("online", () => {
  if (retry !== undefined) connect();
});

connect();
