// Finds the module specifiers a TypeScript/JavaScript file imports, without a parser dependency.
// A small tokenizer skips comments, strings, template literals and regular expressions (so an
// "import" inside any of them is not taken for one), then the token stream is matched against the
// import forms: `import … from "x"`, `import "x"`, `import x = require("x")`, `export … from "x"`,
// `import("x")` and `require("x")`. Type-only forms are kept and marked, because a cycle through
// `import type` still couples the files (the dependency rule counts them).

export interface ImportRef {
  readonly specifier: string;
  /** `import type`, `export type`, `typeof import()`, or every named binding marked `type`. */
  readonly typeOnly: boolean;
  /** `import("x")` or `require("x")`: resolved at run time, still an edge. */
  readonly dynamic: boolean;
  readonly line: number;
}

type Token =
  | { readonly kind: "id"; readonly value: string; readonly line: number }
  | { readonly kind: "str"; readonly value: string; readonly line: number }
  | { readonly kind: "punct"; readonly value: string; readonly line: number }
  | { readonly kind: "literal"; readonly value: ""; readonly line: number };

// After these tokens a `/` starts a regular expression, not a division.
const KEYWORDS_BEFORE_EXPRESSION = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "yield",
  "await",
  "instanceof",
]);

const isIdStart = (c: string): boolean => /[A-Za-z_$\u0080-\uffff]/.test(c);
const isIdPart = (c: string): boolean => /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  // Brace depth at which each open template literal's `${` started, innermost last.
  const templateBraces: number[] = [];
  let braceDepth = 0;

  const regexAllowed = (): boolean => {
    const prev = tokens[tokens.length - 1];
    if (prev === undefined) return true;
    if (prev.kind === "id") return KEYWORDS_BEFORE_EXPRESSION.has(prev.value);
    if (prev.kind === "punct") return prev.value !== ")" && prev.value !== "]";
    return false;
  };

  /** Scans template text from `i` (just after a backtick or a closing `}` of `${`). */
  const scanTemplateText = (): void => {
    while (i < source.length) {
      const c = source[i]!;
      if (c === "\\") {
        if (source[i + 1] === "\n") line++;
        i += 2;
        continue;
      }
      if (c === "\n") line++;
      if (c === "`") {
        i++;
        return;
      }
      if (c === "$" && source[i + 1] === "{") {
        i += 2;
        templateBraces.push(braceDepth);
        braceDepth++;
        return;
      }
      i++;
    }
  };

  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === "\n") {
      line++;
      i++;
    } else if (c === " " || c === "\t" || c === "\r") {
      i++;
    } else if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? source.length : end + 2;
      for (let j = i; j < stop; j++) if (source[j] === "\n") line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      const startLine = line;
      let value = "";
      i++;
      while (i < source.length && source[i] !== c) {
        if (source[i] === "\\") {
          if (source[i + 1] === "\n") line++; // a line continuation
          value += source[i + 1] ?? "";
          i += 2;
          continue;
        }
        if (source[i] === "\n") break; // unterminated: stop at the line end
        value += source[i];
        i++;
      }
      i++;
      tokens.push({ kind: "str", value, line: startLine });
    } else if (c === "`") {
      tokens.push({ kind: "literal", value: "", line });
      i++;
      scanTemplateText();
    } else if (c === "/" && regexAllowed()) {
      let inClass = false;
      i++;
      while (i < source.length) {
        const r = source[i]!;
        if (r === "\\") {
          i += 2;
          continue;
        }
        if (r === "\n") break;
        i++;
        if (r === "[") inClass = true;
        else if (r === "]") inClass = false;
        else if (r === "/" && !inClass) break;
      }
      while (i < source.length && isIdPart(source[i]!)) i++;
      tokens.push({ kind: "literal", value: "", line });
    } else if (isIdStart(c)) {
      let j = i + 1;
      while (j < source.length && isIdPart(source[j]!)) j++;
      tokens.push({ kind: "id", value: source.slice(i, j), line });
      i = j;
    } else if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < source.length && /[0-9A-Za-z_.]/.test(source[j]!)) j++;
      tokens.push({ kind: "literal", value: "", line });
      i = j;
    } else {
      if (c === "{") braceDepth++;
      if (c === "}") {
        braceDepth--;
        if (templateBraces.length > 0 && templateBraces[templateBraces.length - 1] === braceDepth) {
          // The `}` closing a `${…}`: back into the template's text.
          templateBraces.pop();
          i++;
          scanTemplateText();
          continue;
        }
      }
      tokens.push({ kind: "punct", value: c, line });
      i++;
    }
  }
  return tokens;
}

const isId = (t: Token | undefined, value?: string): boolean =>
  t !== undefined && t.kind === "id" && (value === undefined || t.value === value);
const isPunct = (t: Token | undefined, value: string): boolean =>
  t !== undefined && t.kind === "punct" && t.value === value;

/** Index just past the `}` matching the `{` at `open`. */
function skipBraces(tokens: readonly Token[], open: number): number {
  let depth = 0;
  for (let k = open; k < tokens.length; k++) {
    if (isPunct(tokens[k], "{")) depth++;
    else if (isPunct(tokens[k], "}")) {
      depth--;
      if (depth === 0) return k + 1;
    }
  }
  return tokens.length;
}

/** True when every binding between the braces is written `type X` (so the import erases). */
function allBindingsTypeOnly(tokens: readonly Token[], open: number, close: number): boolean {
  let sawBinding = false;
  let atBindingStart = true;
  for (let k = open + 1; k < close - 1; k++) {
    const t = tokens[k]!;
    if (isPunct(t, ",")) {
      atBindingStart = true;
      continue;
    }
    if (atBindingStart) {
      // `type X` marks the binding; a binding named `type` alone (`{ type }`, `{ type as t }`) does not.
      const following = tokens[k + 1];
      const marked = isId(t, "type") && isId(following) && !isId(following, "as");
      if (!marked) return false;
      sawBinding = true;
      atBindingStart = false;
    }
  }
  return sawBinding;
}

export function scanImports(source: string): ImportRef[] {
  const tokens = tokenize(source);
  const refs: ImportRef[] = [];
  const stringAt = (k: number): string | undefined => {
    const t = tokens[k];
    return t !== undefined && t.kind === "str" ? t.value : undefined;
  };

  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]!;
    if (t.kind !== "id") continue;
    const prev = tokens[k - 1];
    if (isPunct(prev, ".")) continue; // a property: `x.import`, `module.require`
    const next = tokens[k + 1];

    if (t.value === "require" && isPunct(next, "(")) {
      const specifier = stringAt(k + 2);
      if (specifier !== undefined && isPunct(tokens[k + 3], ")")) {
        refs.push({ specifier, typeOnly: false, dynamic: true, line: t.line });
      }
      continue;
    }

    if (t.value === "import") {
      if (isPunct(next, ":") || isPunct(next, ".")) continue; // a key `import:`, or `import.meta`
      if (isPunct(next, "(")) {
        const specifier = stringAt(k + 2);
        if (specifier !== undefined) {
          refs.push({ specifier, typeOnly: isId(prev, "typeof"), dynamic: true, line: t.line });
        }
        continue;
      }
      const bare = stringAt(k + 1);
      if (bare !== undefined) {
        refs.push({ specifier: bare, typeOnly: false, dynamic: false, line: t.line });
        continue;
      }
      // import [type] [Default][, { … } | * as X] from "x"   |   import X = require("x")
      let m = k + 1;
      let typeOnly = false;
      if (isId(tokens[m], "type") && !isId(tokens[m + 1], "from") && !isPunct(tokens[m + 1], ",")) {
        typeOnly = true;
        m++;
      }
      let hasDefaultOrNamespace = false;
      let namedTypeOnly: boolean | undefined;
      while (m < tokens.length) {
        const u = tokens[m]!;
        if (isPunct(u, "{")) {
          const close = skipBraces(tokens, m);
          namedTypeOnly = allBindingsTypeOnly(tokens, m, close);
          m = close;
        } else if (isPunct(u, "*")) {
          hasDefaultOrNamespace = true;
          m += 3; // * as X
        } else if (isId(u, "from")) {
          const specifier = stringAt(m + 1);
          if (specifier !== undefined) {
            const erased = typeOnly || (namedTypeOnly === true && !hasDefaultOrNamespace);
            refs.push({ specifier, typeOnly: erased, dynamic: false, line: t.line });
          }
          break;
        } else if (isPunct(u, "=")) {
          // import X = require("x")
          if (isId(tokens[m + 1], "require") && isPunct(tokens[m + 2], "(")) {
            const specifier = stringAt(m + 3);
            if (specifier !== undefined) {
              refs.push({ specifier, typeOnly, dynamic: false, line: t.line });
            }
          }
          k = m + 4;
          break;
        } else if (isPunct(u, ",")) {
          m++;
        } else if (u.kind === "id") {
          hasDefaultOrNamespace = true;
          m++;
        } else {
          break; // not an import statement
        }
      }
      continue;
    }

    if (t.value === "export") {
      // export [type] { … } from "x"   |   export [type] * [as X] from "x"
      let m = k + 1;
      let typeOnly = false;
      if (isId(tokens[m], "type") && (isPunct(tokens[m + 1], "{") || isPunct(tokens[m + 1], "*"))) {
        typeOnly = true;
        m++;
      }
      let namedTypeOnly = false;
      if (isPunct(tokens[m], "{")) {
        const close = skipBraces(tokens, m);
        namedTypeOnly = allBindingsTypeOnly(tokens, m, close);
        m = close;
      } else if (isPunct(tokens[m], "*")) {
        m++;
        if (isId(tokens[m], "as")) m += 2;
      } else {
        continue;
      }
      if (isId(tokens[m], "from")) {
        const specifier = stringAt(m + 1);
        if (specifier !== undefined) {
          refs.push({ specifier, typeOnly: typeOnly || namedTypeOnly, dynamic: false, line: t.line });
        }
      }
    }
  }
  return refs;
}
