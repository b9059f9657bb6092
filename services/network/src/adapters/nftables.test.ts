import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runChecked, runCommand } from "./command.js";
import { baseRuleset, nftScripts } from "./nftables.js";

// Loaded into a real kernel, in a throwaway netns this test creates.
const netns = `bt-nft-${randomBytes(3).toString("hex")}`;
const nft = (script: string) => runChecked("ip", ["netns", "exec", netns, "nft", "-f", "-"], `${script}\n`);
const list = (family: string) =>
  runChecked("ip", ["netns", "exec", netns, "nft", "list", "table", family, "bhatti"]);

beforeAll(() => runChecked("ip", ["netns", "add", netns]));
afterAll(() => runCommand("ip", ["netns", "del", netns]));

const user = { bridge: "bhbr1", gateway: "10.201.0.1" };
const sandbox = {
  port: "bhv0123456789",
  address: "10.201.0.2",
  policy: { mode: "allow-list", cidrs: [{ base: 0xc6336400, prefix: 24 }], hosts: ["x.test"] },
} as const;

describe("nftables scripts", () => {
  it("load atomically, twice, without growing the rule count", async () => {
    await nft(nftScripts.load("10.201.0.0/16", [user], [sandbox]));
    const first = await list("inet");
    await nft(nftScripts.load("10.201.0.0/16", [user], [sandbox]));
    expect(await list("inet")).toBe(first);
    expect(first).toContain('"bhbr1" . 10.201.0.1');
    expect(first).toContain("10.201.0.2 . 198.51.100.0/24");
    expect(await list("bridge")).toContain('"bhv0123456789" . 02:bb:0a:c9:00:02 . 10.201.0.2');
  });

  it("removes elements idempotently, present or not", async () => {
    await nft(nftScripts.allowResolved(sandbox.address, ["198.51.100.7"], 300));
    expect(await list("inet")).toContain("10.201.0.2 . 198.51.100.7");
    const remove = nftScripts.removeSandbox(sandbox, ["198.51.100.7"]);
    await nft(remove);
    await nft(remove);
    await nft(nftScripts.removeUser(user));
    await nft(nftScripts.removeUser(user));
    const after = await list("inet");
    expect(after).not.toContain("10.201.0.2");
    expect(after).not.toContain('"bhbr1"');
    expect(await list("bridge")).not.toContain("bhv0123456789");
  });

  it("scopes every base-chain rule to the product's bridges or ports", () => {
    const chains = baseRuleset("10.201.0.0/16").split("chain ").slice(1);
    const hooked = chains.filter((c) => c.includes("hook"));
    expect(hooked).toHaveLength(4);
    for (const chain of hooked) {
      expect(chain).toContain("policy accept");
      const rules = chain.split("\n").filter((l) => l.trim() !== "" && !/type |^\s*}|\{$/.test(l));
      for (const rule of rules) expect(rule).toMatch(/@bridges|@ports|@gateways/);
    }
  });
});
