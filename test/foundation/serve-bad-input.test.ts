import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, makeTestDir, runCli } from "./serve-harness.js";

// Each case must fail before any process starts, with a message naming the problem.
describe("bhatti serve with bad input", () => {
  let dir: string;
  let port: number;
  const base = () => [
    `--socket-dir=${join(dir, "s")}`,
    `--state-dir=${join(dir, "state")}`,
    `--listen=127.0.0.1:${port}`,
    `--client-config-file=${join(dir, "client.yaml")}`,
  ];
  beforeAll(async () => {
    dir = makeTestDir();
    port = await freePort();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("names an unknown key in the config file", async () => {
    const file = join(dir, "unknown.yaml");
    writeFileSync(file, "state_dir: /tmp/x\nbogus_key: 1\n");
    const r = await runCli(["serve", ...base(), `--config=${file}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`config file ${file}: unknown key "bogus_key"`);
  });

  it("names a malformed config file and the line", async () => {
    const file = join(dir, "malformed.yaml");
    writeFileSync(file, "listen: [unclosed\nstate_dir: /x\n");
    const r = await runCli(["serve", ...base(), `--config=${file}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`config file ${file} is not valid YAML`);
    expect(r.stderr).toMatch(/\(line \d+\)/);
  });

  it("names a bad value and an unknown flag", async () => {
    const bad = await runCli(["serve", ...base(), "--log-level=loud"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid value for "log_level"');
    const unknown = await runCli(["serve", ...base(), "--no-such-flag=1"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("unknown argument: --no-such-flag=1");
  });

  it("names an unwritable state dir", async () => {
    const file = join(dir, "not-a-dir");
    writeFileSync(file, "");
    const r = await runCli(["serve", ...base(), `--state-dir=${join(file, "state")}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`state dir ${join(file, "state")} is not writable`);
  });

  it("names a port that is in use", async () => {
    const squatter: Server = createServer();
    const busy = await freePort();
    await new Promise<void>((ok) => squatter.listen(busy, "127.0.0.1", ok));
    try {
      mkdirSync(join(dir, "busy"), { recursive: true });
      const r = await runCli([
        "serve",
        ...base(),
        `--listen=127.0.0.1:${busy}`,
        `--socket-dir=${join(dir, "busy")}`,
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${busy}: address already in use`);
      // Nothing was started, so nothing is left in the socket dir.
      expect(r.stderr).not.toContain("exited during start-up");
    } finally {
      await new Promise<void>((ok) => squatter.close(() => ok()));
    }
  });
});
