// Credentials out of text that leaves a run: request logs, error messages, summaries, echoed responses.

export const REDACTED = '[REDACTED]';

const HEADER_PATTERNS: RegExp[] = [
  // Authorization: Bearer abc / Proxy-Authorization: Basic abc / X-Api-Key: abc, as text
  /((?:proxy-)?authorization|x-api-key|api-key|apikey|x-auth-token|cookie|set-cookie)(\s*[:=]\s*)([^\r\n,;]+)/gi,
  // "authorization": "...", "password": "...", "token": "..." in JSON
  /("(?:(?:proxy-)?authorization|x-api-key|api[-_]?key|password|secret|token|access[-_]?token|client[-_]?secret)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi,
];

/** Secrets shorter than this are not searched for: they would blank out ordinary text. */
export const MIN_SECRET_LENGTH = 4;
/** Base64 runs shorter than this are not searched for (a short secret's base64 core is a few letters). */
const MIN_BASE64_LENGTH = 8;

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/**
 * One character of a secret as an API may echo it: itself (in any case: the pattern is case-insensitive),
 * JSON-escaped (\uXXXX, or \" \\ \/, once or nested), percent-encoded (UTF-8 bytes, %2f or %2F), or a
 * space as form encoding writes it.
 */
function charPattern(ch: string): string {
  const units = Array.from({ length: ch.length }, (_, i) => ch.charCodeAt(i).toString(16).padStart(4, '0'));
  const alternatives = [
    escapeRegex(ch),
    units.map((u) => String.raw`\\{1,3}u${u}`).join(''),
    [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''),
  ];
  if (ch === '"' || ch === '\\' || ch === '/') alternatives.push(String.raw`\\{1,3}` + escapeRegex(ch));
  if (ch === ' ') alternatives.push('\\+');
  return `(?:${alternatives.join('|')})`;
}

/**
 * The base64 and base64url forms of a secret wherever it sits in an encoded text: for each of the three
 * alignments, the characters that depend on the secret's bytes alone.
 */
function base64Forms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms: string[] = [];
  for (const offset of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const start = Math.ceil((offset * 4) / 3);
    const end = Math.floor(((offset + bytes.length) * 4) / 3);
    const core = encoded.slice(start, end);
    if (core.length >= MIN_BASE64_LENGTH) forms.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return forms;
}

const patterns = new Map<string, RegExp | undefined>();

/** A case-insensitive pattern of every secret in every echoed form (see charPattern, base64Forms). */
export function secretPattern(secrets: Iterable<string>): RegExp | undefined {
  const list = [...new Set(secrets)].filter((s) => s.length >= MIN_SECRET_LENGTH);
  const id = list.join('\0');
  if (patterns.has(id)) return patterns.get(id);
  list.sort((a, b) => b.length - a.length);
  const alternatives = [
    ...list.flatMap((s) => base64Forms(s).map(escapeRegex)),
    ...list.map((s) => [...s].map(charPattern).join('')),
  ];
  const pattern = alternatives.length === 0 ? undefined : new RegExp(alternatives.join('|'), 'gi');
  if (patterns.size > 100) patterns.clear();
  patterns.set(id, pattern);
  return pattern;
}

/** Every secret in `text`, in any of the forms of secretPattern, replaced by `replacement`. */
export function redactSecrets(text: string, secrets: Iterable<string>, replacement = REDACTED): string {
  const pattern = secretPattern(secrets);
  return pattern ? text.replace(pattern, replacement) : text;
}

/**
 * Remove credentials from a text: every secret value the run resolved (also upper- or lower-cased,
 * base64-, URL- or JSON-encoded), and the values of authorization-like headers and JSON properties.
 */
export function redact(text: string, secrets: Iterable<string>): string {
  let out = redactSecrets(text, secrets);
  out = out.replace(
    HEADER_PATTERNS[0] as RegExp,
    (_m, name: string, sep: string) => `${name}${sep}${REDACTED}`,
  );
  out = out.replace(HEADER_PATTERNS[1] as RegExp, (_m, prefix: string) => `${prefix}"${REDACTED}"`);
  return out;
}
