// Whether a command's archive argument is an http(s) URL. Its own module, so callers that
// only check (e.g. opening a local .clip) do not load the HTTP client.
export function isArchiveUrl(text: string): boolean {
  return /^https?:\/\//i.test(text);
}
