import { execFile } from "node:child_process";
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ImageService, type ImageTask } from "@bhatti/proto/v1/image_pb";
import { taskJson } from "@bhatti/proto/rest-json";
import { CliError } from "../cli-error.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { printJson } from "../output.js";

const POLL_MS = 400;

function imageClient(options: GlobalOptions) {
  return createGatewayClient(ImageService, options, { defaultTimeoutMs: 60_000 }).client;
}

const mb = (n: bigint) => `${(Number(n) / 1024 / 1024).toFixed(1)} MB`;

function progressText(t: ImageTask): string {
  const layers = t.layersTotal > 0 ? ` ${t.layersDone}/${t.layersTotal} layers` : "";
  return `${t.kind.replace("image_", "")} ${t.image}: ${t.phase}${layers}${t.bytesDone > 0n ? ` ${mb(t.bytesDone)}` : ""}`;
}

/**
 * Waits for the task, showing progress: a bar redrawn in place on a TTY, a plain line per change
 * otherwise (logs, CI). Exits non-zero (CliError) when the task failed.
 */
async function follow(options: GlobalOptions, first: ImageTask): Promise<ImageTask> {
  const client = imageClient(options);
  const tty = process.stderr.isTTY === true && options.json !== true;
  let last = "";
  let t = first;
  for (;;) {
    const text = progressText(t);
    if (text !== last && options.json !== true) {
      if (tty) {
        const width = 20;
        const frac = t.layersTotal > 0 ? t.layersDone / t.layersTotal : 0;
        const bar = `[${"#".repeat(Math.round(frac * width)).padEnd(width, ".")}]`;
        process.stderr.write(`\r\x1b[2K${bar} ${text}`);
      } else {
        process.stderr.write(`${text}\n`);
      }
      last = text;
    }
    if (t.state !== "running") break;
    await new Promise((r) => setTimeout(r, POLL_MS));
    const res = await client.getTask({ id: t.id });
    if (res.task === undefined) throw new CliError(`task ${t.id} vanished`);
    t = res.task;
  }
  if (tty) process.stderr.write("\n");
  if (options.json === true) printJson(taskJson(t));
  if (t.state === "failed") throw new CliError(t.error || "the task failed");
  if (options.json !== true) {
    const what =
      t.result === "exists" ? `image ${t.image} is up to date (${t.digest})` : `image ${t.image} ready`;
    process.stdout.write(`${what}\n`);
  }
  return t;
}

/** The registry host of a reference, as Docker reads it (for --authfile). */
export function registryOf(ref: string): string {
  const slash = ref.indexOf("/");
  const first = slash === -1 ? "" : ref.slice(0, slash);
  return first !== "" && (first.includes(".") || first.includes(":") || first === "localhost")
    ? first
    : "docker.io";
}

/** `user:token` for `registry` from a Docker `config.json` (`auths.<host>.auth`, base64 of user:token). */
export function credentialsFromAuthFile(path: string, registry: string): string {
  let auths: Record<string, { auth?: string; username?: string; password?: string }>;
  try {
    auths = (JSON.parse(readFileSync(path, "utf8")) as { auths?: typeof auths }).auths ?? {};
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`);
  }
  const keys =
    registry === "docker.io"
      ? ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"]
      : [registry, `https://${registry}`, `http://${registry}`];
  for (const k of keys) {
    const e = auths[k];
    if (e?.auth) return Buffer.from(e.auth, "base64").toString("utf8");
    if (e?.username && e.password) return `${e.username}:${e.password}`;
  }
  throw new CliError(`${path} has no credentials for ${registry}`);
}

export async function runImagePull(
  options: GlobalOptions,
  ref: string,
  flags: { name?: string; auth?: string; authfile?: string; platform?: string; insecure?: boolean },
): Promise<void> {
  if (flags.auth !== undefined && flags.authfile !== undefined) {
    throw new CliError("give --auth or --authfile, not both");
  }
  const auth =
    flags.authfile !== undefined
      ? credentialsFromAuthFile(flags.authfile, registryOf(ref))
      : (flags.auth ?? "");
  const { task } = await imageClient(options).pullImage({
    ref,
    name: flags.name ?? "",
    auth,
    platform: flags.platform ?? "",
    insecure: flags.insecure === true,
  });
  if (task === undefined) throw new CliError("the server returned no task");
  await follow(options, task);
}

function dockerSave(image: string, out: string): Promise<void> {
  return new Promise((done, fail) => {
    execFile("docker", ["save", "-o", out, image], { maxBuffer: 1 << 20 }, (error, _stdout, stderr) => {
      if (error === null) return done();
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        return fail(
          new CliError(
            "docker is not installed (no `docker` on PATH)",
            "save the image to a tar and run: bhatti image import TAR",
          ),
        );
      }
      fail(new CliError(`docker save ${image} failed: ${stderr.trim().split("\n").pop() ?? error.message}`));
    });
  });
}

/**
 * POSTs the tar to `/images/import?name=` as the request body (streamed from the file, with its
 * Content-Length) and returns the task id from the 202 answer.
 */
async function uploadTar(options: GlobalOptions, file: string, name: string): Promise<string> {
  const { config } = createGatewayClient(ImageService, options);
  const size = statSync(file).size;
  const url = new URL(`${config.url.replace(/\/+$/, "")}/images/import?name=${encodeURIComponent(name)}`);
  const mod = (
    url.protocol === "https:" ? process.getBuiltinModule("node:https") : process.getBuiltinModule("node:http")
  ) as typeof import("node:http");
  const headers: Record<string, string> = {
    "content-type": "application/x-tar",
    "content-length": String(size),
    ...(config.token === undefined ? {} : { authorization: `Bearer ${config.token}` }),
  };
  const { status, body } = await new Promise<{ status: number; body: string }>((done, fail) => {
    const req = mod.request(url, { method: "POST", headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
      });
      res.on("end", () => done({ status: res.statusCode ?? 0, body: text }));
      res.on("error", fail);
    });
    req.on("error", fail);
    createReadStream(file).on("error", fail).pipe(req);
  });
  let json: { id?: string; error?: string } = {};
  try {
    json = JSON.parse(body) as typeof json;
  } catch {
    // not JSON: reported below with the status
  }
  if (status !== 202 || json.id === undefined) {
    throw new CliError(json.error ?? `the upload failed (HTTP ${status})`);
  }
  return json.id;
}

/**
 * `bhatti image import TAR | --from-docker NAME`: the tar is uploaded (streamed) to the server;
 * `--server-path` names a tar already on the server instead (admin). `--from-docker` runs
 * `docker save` into a temp file first.
 */
export async function runImageImport(
  options: GlobalOptions,
  tar: string | undefined,
  flags: { name?: string; fromDocker?: string; serverPath?: boolean },
): Promise<void> {
  if ((tar === undefined) === (flags.fromDocker === undefined)) {
    throw new CliError("give a tar file or --from-docker NAME (not both)");
  }
  let tmp: string | undefined;
  let path: string;
  if (flags.fromDocker !== undefined) {
    tmp = mkdtempSync(join(tmpdir(), "bhatti-import-"));
    path = join(tmp, "image.tar");
    await dockerSave(flags.fromDocker, path);
  } else {
    path = resolve(tar ?? "");
  }
  const fallback = (flags.fromDocker ?? tar ?? "image")
    .split("/")
    .pop()
    ?.replace(/\.tar$/, "")
    .replace(/[:@]/g, "-")
    .toLowerCase();
  const name = flags.name ?? fallback ?? "image";
  try {
    let task: ImageTask | undefined;
    if (flags.serverPath === true) {
      task = (await imageClient(options).importImage({ path, name })).task;
    } else {
      const id = await uploadTar(options, path, name);
      task = (await imageClient(options).getTask({ id })).task;
    }
    if (task === undefined) throw new CliError("the server returned no task");
    await follow(options, task);
  } finally {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  }
}

export async function runImageSave(options: GlobalOptions, sandbox: string, name: string): Promise<void> {
  const { task } = await imageClient(options).saveImage({ sandbox, name });
  if (task === undefined) throw new CliError("the server returned no task");
  await follow(options, task);
}

export async function runImageDelete(options: GlobalOptions, name: string): Promise<void> {
  await imageClient(options).deleteImage({ name });
  if (options.json === true) printJson({ name, status: "deleted" });
  else process.stdout.write(`deleted image ${name}\n`);
}

export async function runImageShare(
  options: GlobalOptions,
  name: string,
  user: string,
  unshare: boolean,
): Promise<void> {
  const { sharedWith } = await imageClient(options).shareImage({ name, user, unshare });
  if (options.json === true) printJson({ name, shared_with: sharedWith });
  else process.stdout.write(`image ${name} is shared with: ${sharedWith.join(", ") || "nobody"}\n`);
}

export async function runTaskShow(options: GlobalOptions, id: string): Promise<void> {
  const { task } = await imageClient(options).getTask({ id });
  if (task === undefined) throw new CliError(`task ${id} not found`);
  if (options.json === true) printJson(taskJson(task));
  else
    process.stdout.write(
      `${task.id} ${task.state} ${progressText(task)}${task.error ? ` (${task.error})` : ""}\n`,
    );
}
