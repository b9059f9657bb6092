import { CliError } from "./cli-error.js";

/** Collects a repeatable `--flag K=V` (also `K=V,K2=V2`) into an object. */
export function collectKeyValue(flag: string) {
  return (value: string, previous: Record<string, string> = {}): Record<string, string> => {
    const out = { ...previous };
    for (const pair of value.split(",")) {
      if (pair === "") continue;
      const eq = pair.indexOf("=");
      if (eq <= 0) throw new CliError(`${flag} expects KEY=VALUE, got ${JSON.stringify(pair)}`);
      out[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    return out;
  };
}

/** Collects a repeatable flag into a list. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
