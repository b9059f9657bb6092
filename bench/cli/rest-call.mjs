// The floor for one CLI command: a process that makes the same gateway call with nothing but
// node:http, and prints how long the call itself took (ms). Used by cli-bench.ts.
//   node rest-call.mjs URL METHOD PATH [JSON_BODY]   (token in $BHATTI_TOKEN)
import { request } from "node:http";

const [url, method, path, body] = process.argv.slice(2);
const { hostname, port } = new URL(url);
const payload = body === undefined ? undefined : Buffer.from(body);
const t = performance.now();
const req = request(
  {
    host: hostname,
    port,
    method,
    path,
    headers: {
      authorization: `Bearer ${process.env.BHATTI_TOKEN}`,
      ...(payload === undefined
        ? {}
        : { "content-type": "application/json", "content-length": String(payload.byteLength) }),
    },
  },
  (res) => {
    res.resume();
    res.on("end", () => {
      if (res.statusCode !== 200) {
        process.stderr.write(`${method} ${path}: HTTP ${res.statusCode}\n`);
        process.exitCode = 1;
      }
      process.stdout.write(`${(performance.now() - t).toFixed(3)}\n`);
    });
  },
);
req.end(payload);
