// URL templates of the http destination: Liquid over `row` (the mapped fields), `key` and `operation`.
// Every variable a template names is checked against the Sync's fields when the writer opens, so a typo
// fails the run before any request; a NULL or empty value in a URL rejects that row (two records must
// never share a URL such as /contacts/null).
import { Liquid, type Template } from 'liquidjs';
import type { Mapping } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { isRawJson } from '../shared/values.ts';

export const TEMPLATE_VARIABLES = ['row', 'key', 'operation'] as const;

/** Thrown while rendering when a value the URL needs is NULL or empty: the row is rejected with it. */
class MissingUrlValue extends Error {}

function present(value: unknown): unknown {
  if (value === null || value === undefined || value === '')
    throw new MissingUrlValue(value === '' ? 'empty' : 'NULL');
  return isRawJson(value) ? value.rawJSON : value;
}

// Values interpolated into URLs are percent-encoded; `| raw` opts out (for a value that is a URL part itself).
const urlLiquid = new Liquid({
  strictFilters: true,
  strictVariables: true,
  // `{% if row.x %}` may test a field that is NULL; the static check still refuses unknown fields.
  lenientIf: true,
  ownPropertyOnly: true,
  outputEscape: (v: unknown) => encodeURIComponent(String(present(v))),
});
urlLiquid.registerFilter('raw', { raw: true, handler: (v: unknown) => present(v) });

export function parseTemplate(text: string, where: string): Template[] {
  try {
    return urlLiquid.parse(text);
  } catch (error) {
    throw new SynclineError(
      'InvalidTemplate',
      `${where} is not a valid Liquid template: ${(error as Error).message}`,
    );
  }
}

/** Whether a template reads the row (row.* or key), that is addresses one record rather than a collection. */
export function dependsOnRow(template: Template[]): boolean {
  return urlLiquid.globalVariableSegmentsSync(template).some(([root]) => root === 'row' || root === 'key');
}

/** The field paths a template may read: each mapping target and everything below it (JSON values). */
function knows(paths: string[][], segments: string[]): boolean {
  return paths.some((path) => {
    const common = Math.min(path.length, segments.length);
    return path.slice(0, common).every((part, i) => part === segments[i]);
  });
}

/**
 * Refuse a template that reads a variable this Sync never provides: an unknown root, or a `row` field
 * that no mapping fills (only `fields` are available, e.g. the key fields for removed rows).
 */
export function checkVariables(template: Template[], where: string, text: string, fields: string[]): void {
  const paths = fields.map((f) => f.split('.'));
  for (const segments of urlLiquid.globalVariableSegmentsSync(template)) {
    const [root, ...rest] = segments;
    const name = segments.map((s) => (typeof s === 'string' ? s : '[…]')).join('.');
    if (!TEMPLATE_VARIABLES.includes(root as (typeof TEMPLATE_VARIABLES)[number])) {
      throw new SynclineError(
        'InvalidTemplate',
        `${where} "${text}" uses the unknown variable ${name}: use row.<field> (fields: ${fields.join(', ')}), key or operation`,
      );
    }
    if (root !== 'row') continue;
    // A dynamic part (row[key]) cannot be checked here; the render still refuses what is missing.
    const dynamic = rest.findIndex((s) => typeof s !== 'string');
    const known = (dynamic === -1 ? rest : rest.slice(0, dynamic)) as string[];
    if (known.length > 0 && !knows(paths, known)) {
      throw new SynclineError(
        'InvalidTemplate',
        `${where} "${text}" uses ${name}, which is not a field of this Sync's ${fields.length === 0 ? 'rows' : `rows (fields: ${fields.join(', ')})`}: map the column, or fix the name`,
      );
    }
  }
}

export function mappedFields(mappings: Mapping[]): string[] {
  return [...new Set(mappings.map((m) => m.to))];
}

/** Render one URL; a missing value becomes a reason to reject the row. */
export function renderUrl(
  template: Template[],
  scope: { row: Record<string, unknown>; key: string; operation: string },
): { url: string } | { reason: string } {
  try {
    return { url: String(urlLiquid.renderSync(template, scope)).trim() };
  } catch (error) {
    const { originalError, token } = error as { originalError?: unknown; token?: { getText(): string } };
    if (originalError instanceof MissingUrlValue) {
      return {
        reason: `${token ? `${token.getText()} in the URL` : 'a value of the URL'} is ${originalError.message}: the row needs it to address its record`,
      };
    }
    return { reason: `the URL template failed: ${(error as Error).message}` };
  }
}
