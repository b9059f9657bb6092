import { SandboxSchema } from "@bhatti/proto";
import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { age, sandboxJson, statusText, thermalText } from "./sandbox-output.js";
import { sandboxFromJson } from "./sandbox-view.js";

// `list` reads sandboxes from Connect's JSON encoding without descriptors (sandboxFromJson); every
// other command decodes the message. Both must print the same thing.
describe("a sandbox read from its proto3 JSON prints as the decoded message does", () => {
  const text = fc.string({ maxLength: 12 });
  const time = fc.option(
    fc.tuple(fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.integer({ min: 0, max: 999_999 })),
    { nil: undefined },
  );
  const sandbox = fc
    .record({
      id: text,
      name: text,
      status: fc.constantFrom("", "running", "stopped", "creating", "error"),
      thermal: fc.constantFrom("", "hot", "warm", "cold"),
      thermalSinceMs: fc.bigInt({ min: 0n, max: 4_102_444_800_000n }),
      ip: text,
      image: text,
      cpus: fc.constantFrom(0, 0.5, 1, 2, 16),
      memoryMb: fc.integer({ min: 0, max: 1 << 20 }),
      diskSizeMb: fc.integer({ min: 0, max: 1 << 22 }),
      keepHot: fc.boolean(),
      labels: fc.dictionary(text, text, { maxKeys: 3 }),
      createdBy: text,
      createdAt: time,
      stoppedAt: time,
      templateId: text,
    })
    .map(({ createdAt, stoppedAt, ...rest }) => {
      // Timestamps with sub-millisecond nanos, as the store may hold them.
      const ts = (t: [number, number] | undefined) => {
        if (t === undefined) return undefined;
        const base = timestampFromMs(t[0]);
        return { ...base, nanos: (base.nanos - (base.nanos % 1_000_000) + t[1]) % 1_000_000_000 };
      };
      return create(SandboxSchema, {
        ...rest,
        ...(createdAt !== undefined ? { createdAt: ts(createdAt) } : {}),
        ...(stoppedAt !== undefined ? { stoppedAt: ts(stoppedAt) } : {}),
      });
    });

  it("same --json, status, thermal and age for generated sandboxes", () => {
    const now = Date.UTC(2026, 11, 3, 12, 0, 0);
    fc.assert(
      fc.property(sandbox, (msg) => {
        const fromJson = sandboxFromJson(JSON.parse(JSON.stringify(toJson(SandboxSchema, msg))));
        expect(sandboxJson(fromJson)).toEqual(sandboxJson(msg));
        expect(statusText(fromJson)).toBe(statusText(msg));
        expect(thermalText(fromJson, now)).toBe(thermalText(msg, now));
        expect(age(fromJson, now)).toBe(age(msg, now));
      }),
      { numRuns: 300 },
    );
  });
});
