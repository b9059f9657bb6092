/**
 * A small web app (Node built-ins only) that tests run inside a sandbox with the agent package's
 * Node. It listens on 127.0.0.1 (like Vite's default: reachable only through the agent) on every
 * port given in argv (or on `host:port`, e.g. `0.0.0.0:3003`), and serves:
 * - `/` an HTML page whose script builds the DOM and checks a WebSocket echo through the proxy;
 * - `/headers` the request line, headers and the connection's remote address and port as JSON;
 * - `/sse` one server-sent event at once, then one every 10 s until the client goes;
 * - `/blob` 6 MiB of random bytes, `/blob.sha256` their hash; `POST /upload` the body's sha256;
 * - WebSocket upgrades: an echo (text frames, RFC 6455, no extensions).
 */
export const WEB_APP_SOURCE = String.raw`
const http = require("node:http");
const crypto = require("node:crypto");
const blob = crypto.randomBytes(6 * 1024 * 1024 + 17);
const blobSha = crypto.createHash("sha256").update(blob).digest("hex");
const page = '<!doctype html><html><head><title>bhatti preview</title></head><body>' +
  '<div id="app">loading</div><script>' +
  'const app = document.getElementById("app");' +
  'app.textContent = "";' +
  'const ul = document.createElement("ul"); ul.id = "items";' +
  'for (const n of [1, 2, 3]) { const li = document.createElement("li"); li.textContent = "item-" + n * 7; ul.appendChild(li); }' +
  'app.appendChild(ul);' +
  'const ws = new WebSocket(location.href.replace(/^http/, "ws") + "ws");' +
  'ws.onopen = () => ws.send("ping-from-page");' +
  'ws.onmessage = (e) => { const p = document.createElement("p"); p.id = "ws"; p.textContent = e.data; app.appendChild(p); };' +
  '</script></body></html>';

function wsEcho(req, socket) {
  const key = req.headers["sec-websocket-key"];
  const accept = crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n");
  let buf = Buffer.alloc(0);
  socket.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15;
      let len = buf[1] & 127, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = (buf[1] & 128) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (buf.length < need) return;
      const mask = masked ? buf.subarray(off, off + 4) : null;
      const payload = Buffer.from(buf.subarray(off + (masked ? 4 : 0), need));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(need);
      if (op === 8) { socket.end(Buffer.from([0x88, 0])); return; }
      if (op === 9) { socket.write(Buffer.concat([Buffer.from([0x8a, payload.length]), payload])); continue; }
      if (op !== 1) continue;
      const out = Buffer.from("echo:" + payload.toString("utf8"));
      const head = out.length < 126 ? Buffer.from([0x81, out.length]) : Buffer.from([0x81, 126, out.length >> 8, out.length & 255]);
      socket.write(Buffer.concat([head, out]));
    }
  });
  socket.on("error", () => socket.destroy());
}

function handler(port) {
  return (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/" ) { res.writeHead(200, { "content-type": "text/html" }); res.end(page); return; }
    if (url.pathname === "/headers") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ port, method: req.method, url: req.url, headers: req.headers, remotePort: req.socket.remotePort, remoteAddress: req.socket.remoteAddress }));
      return;
    }
    if (url.pathname === "/sse") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      let n = 0;
      const send = () => res.write("id: " + ++n + "\ndata: tick-" + n + "\n\n");
      send();
      const t = setInterval(send, 10000);
      res.on("close", () => clearInterval(t));
      return;
    }
    if (url.pathname === "/blob") { res.writeHead(200, { "content-type": "application/octet-stream", "content-length": blob.length }); res.end(blob); return; }
    if (url.pathname === "/blob.sha256") { res.end(blobSha); return; }
    if (url.pathname === "/upload" && req.method === "POST") {
      const h = crypto.createHash("sha256");
      let n = 0;
      req.on("data", (d) => { h.update(d); n += d.length; });
      req.on("end", () => { res.writeHead(200, { "content-type": "application/json" }); res.end(JSON.stringify({ bytes: n, sha256: h.digest("hex") })); });
      return;
    }
    res.writeHead(404); res.end("no such page");
  };
}

for (const arg of process.argv.slice(2)) {
  const [host, p] = arg.includes(":") ? arg.split(":") : ["127.0.0.1", arg];
  const port = Number(p);
  const server = http.createServer(handler(port));
  server.on("upgrade", wsEcho);
  server.listen(port, host);
}
`;
