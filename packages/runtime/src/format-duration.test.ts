import { describe, expect, it } from "vitest";
import { formatDuration } from "./format-duration.js";

describe("formatDuration", () => {
  it("prints like Go's time.Duration rounded to seconds", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(45_400)).toBe("45s");
    expect(formatDuration(60_000)).toBe("1m0s");
    expect(formatDuration((2 * 3600 + 15 * 60 + 30) * 1000)).toBe("2h15m30s");
    expect(formatDuration(-5_000)).toBe("0s");
  });
});
