/** Process exit codes of the `clip` command. */
export const EXIT = {
  ok: 0,
  /** The operation failed (registry, archive, I/O); the message says why. */
  failure: 1,
  /** Bad arguments or references. */
  usage: 2,
  /** A bug: an unexpected exception. */
  internal: 70,
} as const;
