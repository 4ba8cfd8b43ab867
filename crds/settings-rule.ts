import type { z } from 'zod';
import { withRules, type Rule } from './rules.ts';

/**
 * For a spec with a `type` discriminator and one optional settings block per type: the block named by
 * `type` must be present, and no other block may be.
 */
export function exactlyTheSettingsOf<S extends z.ZodObject>(schema: S, types: readonly string[]): S {
  const rules: Rule<Record<string, unknown>>[] = types.flatMap((t) => [
    {
      cel: `self.type != '${t}' || has(self.${t})`,
      check: (v) => v['type'] !== t || v[t] !== undefined,
      message: `type is ${t}: add the ${t} block with its settings`,
      fieldPath: `.${t}`,
    },
    {
      cel: `!has(self.${t}) || self.type == '${t}'`,
      check: (v) => v[t] === undefined || v['type'] === t,
      message: `the ${t} block is set but type is not ${t}: remove the block or change type`,
      fieldPath: `.${t}`,
    },
  ]);
  return withRules(schema, rules as Rule<z.output<S>>[]);
}
