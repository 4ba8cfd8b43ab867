// Salesforce record ids: 15 case-sensitive characters (3 of key prefix, then instance and counter)
// plus the 3-character case-insensitive suffix Salesforce computes from the capitals of the first 15.

/** The one API version the emulator answers (paths under /services/data/v62.0/). */
export const API_VERSION = 'v62.0';
export const API_VERSION_NUMBER = '62.0';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SUFFIX = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

/** The 3-character suffix of an 18-character id: per 5-character chunk, a bit per capital letter. */
export function idSuffix(id15: string): string {
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15.charAt(chunk * 5 + i);
      if (c >= 'A' && c <= 'Z') bits |= 1 << i;
    }
    suffix += SUFFIX.charAt(bits);
  }
  return suffix;
}

/** The n-th id of a key prefix, 18 characters. */
export function makeId(keyPrefix: string, n: number): string {
  let counter = '';
  let rest = n;
  for (let i = 0; i < 7; i++) {
    counter = BASE62.charAt(rest % 62) + counter;
    rest = Math.floor(rest / 62);
  }
  const id15 = `${keyPrefix}5g000${counter}`;
  return id15 + idSuffix(id15);
}

/** An 18-character id from a 15- or 18-character one, or undefined when it is no id. */
export function normalizeId(value: string): string | undefined {
  if (/^[a-zA-Z0-9]{15}$/.test(value)) return value + idSuffix(value);
  if (/^[a-zA-Z0-9]{18}$/.test(value)) {
    const id15 = value.slice(0, 15);
    return idSuffix(id15).toLowerCase() === value.slice(15).toLowerCase() ? id15 + idSuffix(id15) : undefined;
  }
  return undefined;
}
