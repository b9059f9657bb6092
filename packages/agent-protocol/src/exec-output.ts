/**
 * A buffered exec result (the agent client's `exec`, the gateway's REST exec) keeps at most this
 * much output, stdout and stderr together, as v1 did.
 */
export const EXEC_OUTPUT_CAP_BYTES = 10 * 1024 * 1024;

/** Appended to stderr when the cap cut the output; v1's text, which callers may match on. */
export const EXEC_OUTPUT_TRUNCATION_NOTE = "\n[output truncated at 10MB]";
