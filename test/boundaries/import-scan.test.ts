// The import scanner finds every import form, marks the type-only ones, and is not fooled by
// "import" inside comments, strings, template literals or regular expressions.
import { describe, expect, it } from "vitest";
import { scanImports } from "./import-scan.js";

const specs = (source: string) => scanImports(source).map((r) => r.specifier);

describe("scanImports", () => {
  it("finds static, side-effect, re-export, require and dynamic imports with their lines", () => {
    const source = [
      'import { a } from "./a.js";', // 1
      'import b, { c } from "b";', // 2
      'import * as d from "node:fs";', // 3
      'import "./side-effect.js";', // 4
      'export { e } from "./e.js";', // 5
      'export * from "./f.js";', // 6
      'export * as g from "./g.js";', // 7
      'import h = require("h");', // 8
      'const i = await import("./i.js");', // 9
      'const j = require("j");', // 10
      "import {", // 11
      "  k,", // 12
      "  l,", // 13
      '} from "./kl.js";', // 14
    ].join("\n");
    expect(scanImports(source).map((r) => [r.specifier, r.line, r.dynamic])).toEqual([
      ["./a.js", 1, false],
      ["b", 2, false],
      ["node:fs", 3, false],
      ["./side-effect.js", 4, false],
      ["./e.js", 5, false],
      ["./f.js", 6, false],
      ["./g.js", 7, false],
      ["h", 8, false],
      ["./i.js", 9, true],
      ["j", 10, true],
      ["./kl.js", 11, false],
    ]);
  });

  it("marks type-only imports: import type, export type, all-type bindings, typeof import()", () => {
    const source = `
      import type { A } from "./type-a.js";
      import { type B, type C } from "./all-type.js";
      import { type D, e } from "./mixed.js";
      import f, { type G } from "./default-and-type.js";
      export type { H } from "./type-h.js";
      export { type I } from "./all-type-export.js";
      type J = typeof import("./typeof.js");
      import { type } from "./binding-named-type.js";
      import { type as t } from "./binding-named-type-renamed.js";
    `;
    expect(Object.fromEntries(scanImports(source).map((r) => [r.specifier, r.typeOnly]))).toEqual({
      "./type-a.js": true,
      "./all-type.js": true,
      "./mixed.js": false,
      "./default-and-type.js": false,
      "./type-h.js": true,
      "./all-type-export.js": true,
      "./typeof.js": true,
      "./binding-named-type.js": false,
      "./binding-named-type-renamed.js": false,
    });
  });

  it("ignores import-like text in comments, strings, templates and regular expressions", () => {
    const source = `
      // import { x } from "./line-comment.js";
      /* import "./block-comment.js"; */
      const s = 'import { y } from "./single-quoted.js"';
      const d = "export * from './double-quoted.js'";
      const t = \`import("./template.js") \${ok ? "import('./in-substitution-string.js')" : ""}\`;
      const r = /import "\\.\\/regex\\.js"/;
      const q = /["']/g.test(s) ? 1 : 2;
      import { real } from "./after-all-that.js";
    `;
    expect(specs(source)).toEqual(["./after-all-that.js"]);
  });

  it("finds imports inside template substitutions and after division", () => {
    const source = `
      const half = total / 2; const other = x / y;
      const u = \`\${(await import("./in-template.js")).name}\`;
      export { z } from "./after.js";
    `;
    expect(specs(source)).toEqual(["./in-template.js", "./after.js"]);
  });

  it("keeps line numbers right through multi-line comments, templates and continued strings", () => {
    const source = [
      "/* one", // 1
      "   two */", // 2
      "const t = `a", // 3
      "b ${`c", // 4
      "d`}`;", // 5
      'const s = "x\\', // 6
      'y";', // 7
      'import { z } from "./z.js";', // 8
    ].join("\n");
    expect(scanImports(source).map((r) => [r.specifier, r.line])).toEqual([["./z.js", 8]]);
  });

  it("does not take properties or object keys named import or require for imports", () => {
    const source = `
      import.meta.url;
      const o = { import: "./not-an-import.js", require: 1 };
      loader.import("./method.js");
      module.require("./method-too.js");
      export const value = 1;
      export function f() {}
    `;
    expect(specs(source)).toEqual([]);
  });
});
