import { describe, expect, it } from "vitest";
import { cleanPath } from "./clean-path.js";

describe("cleanPath", () => {
  it("resolves dot segments and repeated slashes before routing and auth", () => {
    expect(cleanPath("//health/../sandboxes")).toBe("/sandboxes");
    expect(cleanPath("/health/")).toBe("/health");
    expect(cleanPath("/a/./b//c")).toBe("/a/b/c");
    expect(cleanPath("/../../etc")).toBe("/etc");
    expect(cleanPath("/%2e%2e/health")).toBe("/health");
    expect(cleanPath("/")).toBe("/");
  });
});
