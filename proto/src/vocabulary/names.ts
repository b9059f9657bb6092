/** v1's rule for user-chosen names (volume, image, snapshot, user; sandbox rows in the store). */
export const NAME_RULE = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

/**
 * Sandbox names: the name rule, also ending with a letter or digit, so that the hostname the vmm
 * derives from it (`.` and `_` become `-`) is a valid host name label. The gateway refuses a bad
 * name before a row exists; the vmm checks the same rule on every spec.
 */
export const SANDBOX_NAME_RULE = /^[a-zA-Z0-9](?:[a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?$/;

/** Environment variable names (env keys, and secret names, which become env vars): bounded. */
export const ENV_NAME_RULE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
