/**
 * One or more example lines per leaf command, keyed by its path without `bhatti` (docs/cli.md
 * shows them under the command). A command added without an entry here fails the docs drift test
 * (test/docs/cli-doc.test.ts), so every command in the reference has an example.
 */
export const commandExamples: Readonly<Record<string, readonly string[]>> = {
  version: ["bhatti version"],
  update: ["sudo bhatti update", "sudo bhatti update --rollback"],
  serve: ["sudo bhatti serve --state-dir /var/lib/bhatti --listen 127.0.0.1:8080"],
  "admin status": ["bhatti admin status --json"],
  "admin events": ["bhatti admin events --type thermal. --since 1h --limit 20"],
  "admin metrics": ["bhatti admin metrics --since 24h"],
  "admin backup": ["bhatti admin backup bhatti-2026-12-03.db"],
  create: ["bhatti create --name dev --cpus 2 --memory 2048 --env NODE_ENV=development --label team=web"],
  list: ["bhatti list --label team=web -o wide"],
  inspect: ["bhatti inspect dev --json"],
  edit: ["bhatti edit dev --keep-hot --label owner=alice"],
  stop: ["bhatti stop dev"],
  start: ["bhatti start dev"],
  destroy: ["bhatti destroy dev -y"],
  ps: ["bhatti ps dev"],
  exec: ["bhatti exec dev -- sh -c 'echo hello from $(hostname)'"],
  shell: ["bhatti shell dev"],
  "file read": ["bhatti file read dev /workspace/notes.txt --limit 20"],
  "file write": ["echo 'hello' | bhatti file write dev /workspace/notes.txt"],
  "file ls": ["bhatti file ls dev /workspace"],
  "image list": ["bhatti image list"],
  setup: ["bhatti setup --url http://127.0.0.1:8080 --token bht_..."],
  completion: ["bhatti completion bash > /etc/bash_completion.d/bhatti"],
  "user create": ["bhatti user create --name alice --max-sandboxes 3"],
  "user list": ["bhatti user list --json"],
  "user rotate-key": ["bhatti user rotate-key alice"],
  "user limits": ["bhatti user limits alice --max-memory 8192"],
  "user delete": ["bhatti user delete alice -y"],
  "user whoami": ["bhatti user whoami"],
  "secret set": ['printf %s "$GITHUB_TOKEN" | bhatti secret set GH_TOKEN'],
  "secret list": ["bhatti secret list"],
  "secret delete": ["bhatti secret delete GH_TOKEN -y"],
};
