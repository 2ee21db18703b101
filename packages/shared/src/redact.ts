// Userinfo in references (`user:PASS@registry/repo:tag`, `https://user:PASS@host/…`) must
// never be echoed: clip does not take credentials that way, but a user may still type them,
// and parse errors quote what was typed. Applied to every error message and log line.

/**
 * `user:secret@` where a token starts (start, whitespace, quote, `=`, `(`, `,`) or after
 * `scheme://`. Not `repo:tag@sha256:…` (a digest follows) nor `host:5000/repo@…` (no `/`
 * in the secret part).
 */
const USERINFO = /(^|[\s"'=(,]|:\/\/)([^\s"'@/:]+):([^\s"'/]+)@(?!(?:sha256|sha384|sha512):)/g;

export function redactUserinfo(text: string): string {
  return text.replace(USERINFO, '$1$2:***@');
}
