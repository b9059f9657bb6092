import type { Command } from "commander";
import { CliError } from "../cli-error.js";

/** Commands whose first argument is a sandbox name. */
const takesSandbox = [
  "inspect",
  "info",
  "edit",
  "stop",
  "start",
  "destroy",
  "rm",
  "ps",
  "exec",
  "shell",
  "sh",
];

function visible(cmd: Command): Command[] {
  return cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
}

function names(cmd: Command): string[] {
  return visible(cmd).flatMap((c) => [c.name(), ...c.aliases()]);
}

function bash(program: Command): string {
  const groups = visible(program).filter((c) => c.commands.length > 0);
  const groupCases = groups.map(
    (g) => `    ${g.name()}) COMPREPLY=( $(compgen -W "${names(g).join(" ")}" -- "$cur") ); return ;;`,
  );
  return `# bhatti bash completion: eval "$(bhatti completion bash)"
_bhatti() {
  local cur prev
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${names(program).join(" ")}" -- "$cur") ); return
  fi
  case "$prev" in
${groupCases.join("\n")}
    ${takesSandbox.join("|")}) COMPREPLY=( $(compgen -W "$(bhatti __complete-names 2>/dev/null)" -- "$cur") ); return ;;
  esac
  if [ "$COMP_CWORD" -eq 3 ] && [ "\${COMP_WORDS[1]}" = file ]; then
    COMPREPLY=( $(compgen -W "$(bhatti __complete-names 2>/dev/null)" -- "$cur") )
  fi
}
complete -F _bhatti bhatti
`;
}

function zsh(program: Command): string {
  const groups = visible(program).filter((c) => c.commands.length > 0);
  return `#compdef bhatti
# bhatti zsh completion: eval "$(bhatti completion zsh)"
_bhatti() {
  if (( CURRENT == 2 )); then
    compadd -- ${names(program).join(" ")}
    return
  fi
  case "\${words[2]}" in
${groups.map((g) => `    ${g.name()}) if (( CURRENT == 3 )); then compadd -- ${names(g).join(" ")}; else compadd -- \${(f)"$(bhatti __complete-names 2>/dev/null)"}; fi ;;`).join("\n")}
    ${takesSandbox.join("|")}) (( CURRENT == 3 )) && compadd -- \${(f)"$(bhatti __complete-names 2>/dev/null)"} ;;
  esac
}
compdef _bhatti bhatti
`;
}

function fish(program: Command): string {
  const lines = [
    "# bhatti fish completion: bhatti completion fish | source",
    "complete -c bhatti -f",
    ...visible(program).map(
      (c) =>
        `complete -c bhatti -n "__fish_use_subcommand" -a ${c.name()} -d ${JSON.stringify(c.description())}`,
    ),
  ];
  for (const g of visible(program).filter((c) => c.commands.length > 0)) {
    for (const sub of visible(g)) {
      lines.push(
        `complete -c bhatti -n "__fish_seen_subcommand_from ${g.name()}" -a ${sub.name()} -d ${JSON.stringify(sub.description())}`,
      );
    }
  }
  lines.push(
    `complete -c bhatti -n "__fish_seen_subcommand_from ${takesSandbox.join(" ")}" -a "(bhatti __complete-names 2>/dev/null)"`,
  );
  return `${lines.join("\n")}\n`;
}

export function completionScript(program: Command, shell: string): string {
  switch (shell) {
    case "bash":
      return bash(program);
    case "zsh":
      return zsh(program);
    case "fish":
      return fish(program);
    default:
      throw new CliError(`unsupported shell ${JSON.stringify(shell)}: use bash, zsh or fish`);
  }
}
