import type { z } from 'zod';

/**
 * A validation rule said once and enforced twice: as a CEL `x-kubernetes-validations` entry that the
 * API server evaluates, and as a TypeScript check that the embedded CLI and the operator evaluate on
 * resources read from files (where no API server stands in front of them).
 */
export interface Rule<T> {
  /** CEL expression over `self`, as the API server evaluates it. */
  cel: string;
  /** The same rule in TypeScript. */
  check: (value: T) => boolean;
  /** What a person should do about it. */
  message: string;
  /** JSONPath (relative to the object the rule sits on) of the field to blame, for `kubectl` output. */
  fieldPath?: string;
}

interface CelValidation {
  rule: string;
  message: string;
  fieldPath?: string;
}

/** Attach rules to a schema: both as a zod refinement and as CRD metadata. */
export function withRules<S extends z.ZodType>(schema: S, rules: Rule<z.output<S>>[]): S {
  const refined = schema.superRefine((value, ctx) => {
    for (const rule of rules) {
      if (!rule.check(value)) {
        ctx.addIssue({
          code: 'custom',
          message: rule.message,
          path: rule.fieldPath ? rule.fieldPath.replace(/^\./, '').split('.') : [],
        });
      }
    }
  });
  const existing = (schema.meta()?.['x-kubernetes-validations'] as CelValidation[] | undefined) ?? [];
  const validations: CelValidation[] = [
    ...existing,
    ...rules.map((r) => ({
      rule: r.cel,
      message: r.message,
      ...(r.fieldPath ? { fieldPath: r.fieldPath } : {}),
    })),
  ];
  return refined.meta({ ...(schema.meta() ?? {}), 'x-kubernetes-validations': validations }) as S;
}

/** Go duration syntax, as `time.ParseDuration` and CEL's `duration()` accept it (units up to hours). */
export const GO_DURATION_RE = /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/;

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Milliseconds in a Go duration string such as `1h30m`; undefined when the string is not one. */
export function parseGoDuration(text: string): number | undefined {
  if (!GO_DURATION_RE.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/g)) {
    total += Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] ?? 0);
  }
  return total;
}

/**
 * Standard five-field cron (minute hour day-of-month month day-of-week) with ranges, steps, lists and
 * month/day names, or one of the @-macros. Value ranges are checked by the operator's cron parser.
 */
const CRON_FIELD = String.raw`(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*`;
export const CRON_RE_SOURCE = String.raw`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|${CRON_FIELD}(\s+${CRON_FIELD}){4})$`;
export const CRON_RE = new RegExp(CRON_RE_SOURCE);

/** A CEL string literal (single-quoted, backslashes escaped) of `text`. */
export function celString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
