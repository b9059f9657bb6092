import { describe, expect, it } from "vitest";
import { ipScripts } from "./ip-link.js";

const spec = {
  netns: "bhatti-0123456789abcdef",
  veth: "bhv0123456789",
  bridge: "bhbr3",
  mac: "02:bb:0a:c9:02:07",
  addressCidr: "10.201.2.7/24",
  gateway: "10.201.2.1",
};

describe("ip batch scripts", () => {
  it("create the veth from inside the new netns with its host end on the bridge by index", () => {
    const lines = ipScripts.netnsCreate(spec, 42, "/proc/77/ns/net").split("\n");
    expect(lines[0]).toBe(
      "link add bhv0123456789 netns /proc/77/ns/net master if42 up type veth peer name eth0",
    );
    expect(lines.slice(1)).toEqual([
      "link set lo up",
      "link set eth0 address 02:bb:0a:c9:02:07",
      "addr flush dev eth0",
      "addr replace 10.201.2.7/24 dev eth0",
      "link set eth0 up",
      "route replace default via 10.201.2.1 dev eth0",
    ]);
  });

  it("keep every interface name within 15 characters", () => {
    for (const line of [
      ...ipScripts.netnsCreate(spec, 1, "/proc/1/ns/net").split("\n"),
      ...ipScripts.tapCreate({ tap: "bhtap0123456789", bridge: "bhbr65536" }).split("\n"),
    ]) {
      for (const word of line.split(" ")) {
        if (/^(bh|eth)/.test(word)) expect(word.length).toBeLessThanOrEqual(15);
      }
    }
  });
});
