// The executable parts of a docs page: fenced ```sh blocks, each preceded by a marker comment
//   <!-- quickstart: run -->            the test runs it (bash -e) and expects exit status 0
//   <!-- quickstart: skip: REASON -->   shown to the reader, never run (the reason says why)
//   <!-- quickstart: expect -->         the fenced block after it is output the run block before must print
// Expected output is matched line by line, in order, against the lines of stdout (other lines
// may come between); runs of spaces count as one, and a placeholder such as <id> or <pid> stands
// for any text. JSON blocks are matched the same way, so a page shows real output with the
// changing values (ids, times) replaced by placeholders.

export interface RunBlock {
  readonly kind: "run";
  /** 1-based line of the opening fence, for messages. */
  readonly line: number;
  readonly script: string;
  /** The expect block that follows, if any. */
  readonly expect: string | undefined;
}

export interface SkipBlock {
  readonly kind: "skip";
  readonly line: number;
  readonly reason: string;
}

export type DocBlock = RunBlock | SkipBlock;

const MARKER = /^<!-- quickstart: (run|skip|expect)(?::\s*(.*?))?\s*-->$/;

/** The marked blocks of `markdown`, in order. Throws on a ```sh block without a marker. */
export function parseDocBlocks(markdown: string): DocBlock[] {
  const lines = markdown.split("\n");
  const blocks: DocBlock[] = [];
  let pending: { kind: string; reason: string | undefined } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const marker = MARKER.exec(line.trim());
    if (marker !== null) {
      pending = { kind: marker[1] ?? "", reason: marker[2] };
      continue;
    }
    const fence = /^```(\w*)/.exec(line);
    if (fence === null) {
      if (line.trim() !== "" && pending !== undefined) {
        throw new Error(`line ${i}: a quickstart marker must be followed by a fenced block`);
      }
      continue;
    }
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i] ?? "").startsWith("```"); i++) body.push(lines[i] ?? "");
    const text = body.join("\n");
    if (pending === undefined) {
      if (fence[1] === "sh") throw new Error(`line ${start + 1}: a sh block without a quickstart marker`);
      continue;
    }
    if (pending.kind === "run")
      blocks.push({ kind: "run", line: start + 1, script: text, expect: undefined });
    else if (pending.kind === "skip") {
      if (pending.reason === undefined || pending.reason === "") {
        throw new Error(`line ${start + 1}: a skipped block must say why`);
      }
      blocks.push({ kind: "skip", line: start + 1, reason: pending.reason });
    } else {
      const last = blocks.at(-1);
      if (last?.kind !== "run" || last.expect !== undefined) {
        throw new Error(`line ${start + 1}: an expect block must follow a run block`);
      }
      blocks[blocks.length - 1] = { ...last, expect: text };
    }
    pending = undefined;
  }
  return blocks;
}

const squash = (line: string): string => line.trim().replace(/\s+/g, " ");

/** A line of expected output as a regular expression (placeholders like <id> match anything). */
function lineRegex(expected: string): RegExp {
  const parts = squash(expected).split(/(<[a-z_]+>)/);
  const source = parts
    .map((p, i) => (i % 2 === 1 ? ".+?" : p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`);
}

/**
 * The expected lines that `stdout` does not show, in order: empty when every expected line matches
 * a line of stdout after the previous match.
 */
export function missingOutput(expected: string, stdout: string): string[] {
  const actual = stdout.split("\n").map(squash);
  const missing: string[] = [];
  let at = 0;
  for (const want of expected.split("\n").filter((l) => l.trim() !== "")) {
    const re = lineRegex(want);
    const found = actual.findIndex((line, i) => i >= at && re.test(line));
    if (found === -1) missing.push(want);
    else at = found + 1;
  }
  return missing;
}
