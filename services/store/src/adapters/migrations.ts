/** One forward-only schema step. Versions are never reused or edited once released. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

// Timestamps are ISO-8601 UTC with milliseconds ("2026-01-02T03:04:05.678Z"): sortable as text.
const initialSchema = `
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  api_key_hash TEXT NOT NULL UNIQUE,
  is_admin INTEGER NOT NULL DEFAULT 0,
  max_sandboxes INTEGER NOT NULL DEFAULT 5,
  max_cpus_per_sandbox INTEGER NOT NULL DEFAULT 4,
  max_memory_mb_per_sandbox INTEGER NOT NULL DEFAULT 4096,
  max_volume_storage_mb INTEGER NOT NULL DEFAULT 20480,
  max_snapshots INTEGER NOT NULL DEFAULT 5,
  max_images INTEGER NOT NULL DEFAULT 10,
  creates_per_minute INTEGER NOT NULL DEFAULT 10,
  execs_per_minute INTEGER NOT NULL DEFAULT 120,
  created_at TEXT NOT NULL,
  key_rotated_at TEXT
) STRICT;

-- Network addressing. Deliberately without foreign keys: the network service owns these
-- numbers and reconciles them; a user's subnet row is removed with the user.
CREATE TABLE user_subnets (
  user_id TEXT PRIMARY KEY,
  subnet_index INTEGER NOT NULL UNIQUE CHECK (subnet_index >= 1),
  assigned_at TEXT NOT NULL
) STRICT;

CREATE TABLE sandbox_addresses (
  sandbox_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  subnet_index INTEGER NOT NULL,
  host INTEGER NOT NULL CHECK (host BETWEEN 1 AND 254),
  reserved_at TEXT NOT NULL,
  UNIQUE (subnet_index, host)
) STRICT;

CREATE TABLE sandboxes (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  name TEXT NOT NULL,
  template_id TEXT NOT NULL DEFAULT '',
  engine_id TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'unknown',
  ip TEXT NOT NULL DEFAULT '',
  engine_meta TEXT NOT NULL DEFAULT '{}',
  engine_state TEXT NOT NULL DEFAULT '{}',
  cpus REAL NOT NULL DEFAULT 1,
  memory_mb INTEGER NOT NULL DEFAULT 1024,
  disk_size_mb INTEGER NOT NULL DEFAULT 0,
  image TEXT NOT NULL DEFAULT 'minimal',
  labels TEXT NOT NULL DEFAULT '{}',
  keep_hot INTEGER NOT NULL DEFAULT 0,
  agent_token TEXT NOT NULL DEFAULT '',
  thermal_state TEXT NOT NULL DEFAULT 'hot',
  thermal_since TEXT NOT NULL,
  last_activity_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  stopped_at TEXT,
  UNIQUE (user_id, name)
) STRICT;
CREATE INDEX sandboxes_status ON sandboxes (status);

CREATE TABLE volumes (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  name TEXT NOT NULL,
  size_mb INTEGER NOT NULL CHECK (size_mb > 0),
  file_path TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'creating' CHECK (status IN ('creating', 'ready')),
  created_at TEXT NOT NULL,
  UNIQUE (user_id, name)
) STRICT;

CREATE TABLE volume_attachments (
  volume_id TEXT NOT NULL REFERENCES volumes(id),
  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
  mount TEXT NOT NULL,
  read_only INTEGER NOT NULL DEFAULT 0,
  attached_at TEXT NOT NULL,
  PRIMARY KEY (volume_id, sandbox_id)
) STRICT;
CREATE INDEX volume_attachments_sandbox ON volume_attachments (sandbox_id);

-- user_id NULL: a system image (a built tier such as "minimal"), visible to everyone.
CREATE TABLE images (
  id TEXT PRIMARY KEY,
  user_id TEXT REFERENCES users(id),
  name TEXT NOT NULL,
  source TEXT NOT NULL,
  file_path TEXT NOT NULL DEFAULT '',
  size_mb INTEGER NOT NULL DEFAULT 0,
  oci_digest TEXT NOT NULL DEFAULT '',
  oci_config TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  UNIQUE (user_id, name)
) STRICT;
CREATE UNIQUE INDEX images_system_name ON images (name) WHERE user_id IS NULL;

CREATE TABLE image_shares (
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  PRIMARY KEY (image_id, user_id)
) STRICT;

CREATE TABLE snapshots (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  name TEXT NOT NULL,
  source_sandbox_id TEXT NOT NULL DEFAULT '',
  path TEXT NOT NULL DEFAULT '',
  manifest TEXT NOT NULL DEFAULT '{}',
  size_mb INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  UNIQUE (user_id, name)
) STRICT;

CREATE TABLE publish_rules (
  id TEXT PRIMARY KEY,
  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id),
  port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
  alias TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  UNIQUE (sandbox_id, port)
) STRICT;

-- One web-shell token per sandbox; only its SHA-256 is kept.
CREATE TABLE shell_tokens (
  sandbox_id TEXT PRIMARY KEY REFERENCES sandboxes(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id),
  token_hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL
) STRICT;

CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  type TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
  progress TEXT NOT NULL DEFAULT '',
  result TEXT NOT NULL DEFAULT '{}',
  error TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  completed_at TEXT
) STRICT;
CREATE INDEX tasks_user ON tasks (user_id, created_at);

-- Values are age ciphertext under the server identity; plaintext never reaches this file.
CREATE TABLE secrets (
  user_id TEXT NOT NULL REFERENCES users(id),
  name TEXT NOT NULL,
  value_encrypted BLOB NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (user_id, name)
) STRICT;

-- Append-only. user_id / sandbox_id are plain text: events outlive what they describe.
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts TEXT NOT NULL,
  type TEXT NOT NULL,
  user_id TEXT NOT NULL DEFAULT '',
  sandbox_id TEXT NOT NULL DEFAULT '',
  meta TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_type_ts ON events (type, ts);
CREATE INDEX events_user_ts ON events (user_id, ts);
CREATE INDEX events_sandbox_ts ON events (sandbox_id, ts);

CREATE TABLE metrics_snapshots (
  ts TEXT PRIMARY KEY,
  sandboxes_total INTEGER NOT NULL,
  sandboxes_by_status TEXT NOT NULL DEFAULT '{}',
  sandboxes_by_thermal TEXT NOT NULL DEFAULT '{}',
  users_total INTEGER NOT NULL,
  users_with_sandboxes INTEGER NOT NULL,
  sandboxes_per_user TEXT NOT NULL DEFAULT '{}',
  host_mem_total_mb INTEGER NOT NULL,
  host_mem_available_mb INTEGER NOT NULL,
  host_disk_total_mb INTEGER NOT NULL,
  host_disk_available_mb INTEGER NOT NULL,
  host_load_1m REAL NOT NULL,
  events_total INTEGER NOT NULL
) STRICT;
`;

// Share links (the gateway signs them; the store keeps them so a revoke survives a gateway restart).
const sharesSchema = `
CREATE TABLE shares (
  id TEXT PRIMARY KEY,
  sandbox_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  read_only INTEGER NOT NULL,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT
) STRICT;
CREATE INDEX shares_sandbox ON shares (sandbox_id, created_at);
`;

// Issue 14: a published port may require the owner's API key (`bhatti publish --private`).
const publishPrivate = "ALTER TABLE publish_rules ADD COLUMN private INTEGER NOT NULL DEFAULT 0;";

export const storeMigrations: readonly Migration[] = [
  { version: 1, name: "initial", sql: initialSchema },
  { version: 2, name: "shares", sql: sharesSchema },
  { version: 3, name: "publish_private", sql: publishPrivate },
];
