// Text that leaves a run cut to size: request-log bodies, the response bodies quoted in reasons.

/** The first `limit` characters of `text` and how many more there were; `text` itself when it fits. */
export function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}… [${text.length - limit} more characters]`;
}

/** `text` in at most `max` characters, ending in … when cut (a field with a size limit, e.g. a condition message). */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
