// What the live debugger, a rejected row's reason and the logs may see of a request or its response:
// never a secret header value (in any echoed form: see secretPattern), and no credential in a URL.
import { MIN_SECRET_LENGTH, redactSecrets } from '../../core/redact.ts';

const SENSITIVE_PARAM = /(key|token|secret|password|passwd|pwd|signature|sig|auth|credential|session)/i;
export const REDACTED = 'REDACTED';

export interface Redactor {
  url(url: string): string;
  text(text: string): string;
}

export function redactor(secretValues: Iterable<string>): Redactor {
  const secrets = [...new Set(secretValues)]
    .filter((s) => s.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  const text = (value: string) => redactSecrets(value, secrets, REDACTED);
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
