// What the live debugger may see of a request: never a secret header value, and no credential in a URL.
const SENSITIVE_PARAM = /(key|token|secret|password|passwd|pwd|signature|sig|auth|credential|session)/i;
export const REDACTED = 'REDACTED';

/** Secrets shorter than this are not searched for in text: they would redact ordinary words. */
const MIN_SECRET_LENGTH = 4;

export interface Redactor {
  url(url: string): string;
  text(text: string): string;
}

export function redactor(secretValues: Iterable<string>): Redactor {
  const secrets = [...new Set(secretValues)]
    .filter((s) => s.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  const text = (value: string) => secrets.reduce((out, secret) => out.split(secret).join(REDACTED), value);
  return {
    url(raw) {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        return text(raw);
      }
      if (url.password) url.password = REDACTED;
      for (const [name, value] of [...url.searchParams]) {
        if (SENSITIVE_PARAM.test(name) || secrets.includes(value)) url.searchParams.set(name, REDACTED);
      }
      return text(url.toString());
    },
    text,
  };
}
