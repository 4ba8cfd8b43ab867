import { z } from 'zod';
import { localObjectReference } from './common.ts';
import { withRules, type Rule } from './rules.ts';

// Audiences (issue 16): a parent Model declares the columns a segment may filter on and its
// relationships to related Models; a segment Model is a tree of conditions over them, compiled to SQL
// by core/segments. CRD schemas cannot be recursive, so the tree is unrolled to SEGMENT_MAX_DEPTH levels.

/** Levels of and / or under `where` (the CRD schema doubles with each). */
export const SEGMENT_MAX_DEPTH = 2;
/** How many segments deep a segment's parent chain may go (a segment of a segment of a Model is 2). */
export const SEGMENT_MAX_PARENT_DEPTH = 3;

export const SEGMENT_COLUMN_TYPES = ['string', 'number', 'boolean', 'date', 'timestamp'] as const;
export const COMPARISON_OPERATORS = [
  'equals',
  'notEquals',
  'in',
  'notIn',
  'contains',
  'between',
  'gt',
  'gte',
  'lt',
  'lte',
  'isNull',
  'isNotNull',
  'isTrue',
  'isFalse',
  'inLast',
] as const;
export type ComparisonOperator = (typeof COMPARISON_OPERATORS)[number];
export const AGGREGATE_OPERATORS = ['equals', 'notEquals', 'between', 'gt', 'gte', 'lt', 'lte'] as const;
export const AGGREGATES = ['count', 'sum', 'avg', 'min', 'max'] as const;
export const RELATIVE_UNITS = ['minutes', 'hours', 'days', 'weeks'] as const;

/** A SQL identifier the compiler can quote on every dialect (no quotes, dots or spaces to get wrong). */
export const segmentIdentifier = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a column name of letters, digits and _');

const scalarValue = z
  .union([z.string().max(4096), z.number().int()])
  .meta({ 'x-kubernetes-int-or-string': true })
  .describe('An integer or a string (a decimal as text, "10.5"; a date as ISO 8601 text).');
export type SegmentValue = z.infer<typeof scalarValue>;

export const filterableColumn = z
  .object({
    name: segmentIdentifier.describe('Column of this Model that segments may filter on.'),
    type: z
      .enum(SEGMENT_COLUMN_TYPES)
      .describe(
        'Kind of its values: string, number, boolean, date or timestamp (picks the SQL of relative dates).',
      ),
    description: z.string().max(1024).optional().describe('What the column means, for people.'),
  })
  .describe('A column segments may use in conditions.');
export type FilterableColumn = z.infer<typeof filterableColumn>;

export const relationship = z
  .object({
    name: segmentIdentifier.describe('Name conditions use to refer to the related rows (e.g. orders).'),
    modelRef: localObjectReference.describe(
      'The related Model (same Source); it declares its own filterable columns.',
    ),
    column: segmentIdentifier.describe("This Model's column the join starts from (e.g. id)."),
    relatedColumn: segmentIdentifier.describe("The related Model's column that holds it (e.g. customer_id)."),
    cardinality: z
      .enum(['oneToMany', 'oneToOne', 'manyToOne'])
      .default('oneToMany')
      .describe(
        'How many related rows one row of this Model has: oneToMany (default), oneToOne or manyToOne.',
      ),
  })
  .describe('Related rows of another Model, joined by column = relatedColumn.');
export type Relationship = z.infer<typeof relationship>;

const relativeDate = z
  .object({
    amount: z.number().int().min(1).max(100000).describe('How many units back from now.'),
    unit: z.enum(RELATIVE_UNITS).describe('minutes, hours, days or weeks.'),
  })
  .describe('Within the last amount units, up to now (relative to the time the query runs).');

const oneOf = (names: readonly string[], value: Record<string, unknown>) =>
  names.filter((n) => value[n] !== undefined).length;
// CEL keywords used as field names are escaped as __keyword__ (Kubernetes' CEL property escaping).
const celField = (name: string) => (['in', 'not'].includes(name) ? `__${name}__` : name);
const celCount = (names: readonly string[]) =>
  `[${names.map((n) => `has(self.${celField(n)})`).join(', ')}].filter(x, x).size()`;

/** The comparison fields of a column condition, shared by the parent's and the related rows' conditions. */
const comparisonFields = {
  column: segmentIdentifier.optional().describe('The column compared (one of the filterable columns).'),
  equals: scalarValue.optional(),
  notEquals: scalarValue.optional(),
  in: z.array(scalarValue).min(1).max(1000).optional().describe('The column is one of these values.'),
  notIn: z.array(scalarValue).min(1).max(1000).optional().describe('The column is none of these values.'),
  contains: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe('The text column contains this text (literally, case-sensitive).'),
  between: z
    .array(scalarValue)
    .min(2)
    .max(2)
    .optional()
    .describe('Two values: the column is at least the first and at most the second.'),
  gt: scalarValue.optional(),
  gte: scalarValue.optional(),
  lt: scalarValue.optional(),
  lte: scalarValue.optional(),
  isNull: z.literal(true).optional().describe('true: the column is null.'),
  isNotNull: z.literal(true).optional().describe('true: the column is not null.'),
  isTrue: z.literal(true).optional().describe('true: the boolean column is true.'),
  isFalse: z.literal(true).optional().describe('true: the boolean column is false.'),
  inLast: relativeDate.optional(),
};

const comparisonRules = <T extends Record<string, unknown>>(alone: boolean): Rule<T>[] => [
  {
    cel: `!has(self.column) || ${celCount(COMPARISON_OPERATORS)} == 1`,
    check: (c) => c['column'] === undefined || oneOf(COMPARISON_OPERATORS, c) === 1,
    message: `a column condition needs exactly one operator: ${COMPARISON_OPERATORS.join(', ')}`,
  },
  ...(alone
    ? [
        {
          cel: `has(self.column) || ${celCount(COMPARISON_OPERATORS)} == 0`,
          check: (c: T) => c['column'] !== undefined || oneOf(COMPARISON_OPERATORS, c) === 0,
          message: 'an operator needs the column it compares: add column',
        },
      ]
    : []),
];

export const columnCondition = withRules(
  z
    .object({ ...comparisonFields, column: segmentIdentifier.describe('The column compared.') })
    .describe('A comparison of one column of the related rows.'),
  comparisonRules(true),
);
export type ColumnCondition = z.infer<typeof columnCondition>;

const aggregateFields = {
  equals: z.number().optional().describe('The aggregate equals this number.'),
  notEquals: z.number().optional().describe('The aggregate differs from this number.'),
  between: z
    .array(z.number())
    .min(2)
    .max(2)
    .optional()
    .describe('Two numbers: at least the first, at most the second.'),
  gt: z.number().optional().describe('The aggregate is greater than this number.'),
  gte: z.number().optional().describe('The aggregate is at least this number.'),
  lt: z.number().optional().describe('The aggregate is less than this number.'),
  lte: z.number().optional().describe('The aggregate is at most this number.'),
};

export const relatedCondition = withRules(
  z
    .object({
      relationship: segmentIdentifier.describe("One of the parent Model's relationships (by name)."),
      where: z
        .array(columnCondition)
        .max(8)
        .optional()
        .describe(
          "Conditions the related rows must all meet to count (on the related Model's filterable columns).",
        ),
      aggregate: z
        .enum(AGGREGATES)
        .default('count')
        .describe(
          'What is compared over the matching related rows: count (default), sum, avg, min or max of column.',
        ),
      column: segmentIdentifier
        .optional()
        .describe('The related column summed, averaged, or the min/max of.'),
      ...aggregateFields,
    })
    .describe('A condition on related rows: by default "at least one matching row" (count >= 1).'),
  [
    {
      cel: `${celCount(AGGREGATE_OPERATORS)} <= 1`,
      check: (c) => oneOf(AGGREGATE_OPERATORS, c) <= 1,
      message: `a related condition takes at most one of ${AGGREGATE_OPERATORS.join(', ')} (none means count >= 1)`,
    },
    {
      cel: "self.aggregate == 'count' || has(self.column)",
      check: (c) => c.aggregate === 'count' || c.column !== undefined,
      message: 'sum, avg, min and max need the related column they aggregate: add column',
      fieldPath: '.column',
    },
    {
      cel: `self.aggregate == 'count' || ${celCount(AGGREGATE_OPERATORS)} == 1`,
      check: (c) => c.aggregate === 'count' || oneOf(AGGREGATE_OPERATORS, c) === 1,
      message: 'an aggregate other than count needs a comparison, e.g. gt: 500',
    },
  ],
);
export type RelatedCondition = z.infer<typeof relatedCondition>;

const inSegment = localObjectReference.describe(
  'Membership of another segment Model of the same parent: its conditions must hold too.',
);

const NODE_KINDS = ['and', 'or', 'column', 'related', 'inSegment'] as const;

function conditionLevel(below: z.ZodType | undefined) {
  const nested = below
    ? {
        and: z.array(below).min(1).max(16).optional().describe('Every condition holds.'),
        or: z.array(below).min(1).max(16).optional().describe('At least one condition holds.'),
      }
    : {};
  const kinds = below ? NODE_KINDS : NODE_KINDS.filter((k) => k !== 'and' && k !== 'or');
  return withRules(
    z
      .object({
        ...nested,
        not: z
          .boolean()
          .optional()
          .describe('true: negates this condition (not equals, not in the segment, not any of or).'),
        ...comparisonFields,
        related: relatedCondition.optional(),
        inSegment: inSegment.optional(),
      })
      .describe(
        below
          ? 'A condition: and / or of conditions, a column comparison, a related-rows condition or inSegment; not: true negates it.'
          : `A condition (the deepest level, ${SEGMENT_MAX_DEPTH} down: no and / or here).`,
      ),
    [
      {
        cel: `${celCount(kinds)} == 1`,
        check: (c: Record<string, unknown>) => oneOf(kinds, c) === 1,
        message: `a condition is exactly one of: ${kinds.join(', ')}`,
      },
      ...comparisonRules<Record<string, unknown>>(true),
    ],
  );
}

function conditionTree(depth: number): z.ZodType {
  let level: z.ZodType = conditionLevel(undefined);
  for (let i = 0; i < depth; i++) level = conditionLevel(level);
  return level;
}

/** One node of a segment's condition tree (the schema is depth-limited; the type is not). */
export interface SegmentCondition {
  and?: SegmentCondition[];
  or?: SegmentCondition[];
  not?: boolean;
  column?: string;
  equals?: SegmentValue;
  notEquals?: SegmentValue;
  in?: SegmentValue[];
  notIn?: SegmentValue[];
  contains?: string;
  between?: SegmentValue[];
  gt?: SegmentValue;
  gte?: SegmentValue;
  lt?: SegmentValue;
  lte?: SegmentValue;
  isNull?: true;
  isNotNull?: true;
  isTrue?: true;
  isFalse?: true;
  inLast?: { amount: number; unit: (typeof RELATIVE_UNITS)[number] };
  related?: RelatedCondition;
  inSegment?: { name: string };
}

export const segmentCondition = conditionTree(SEGMENT_MAX_DEPTH) as z.ZodType<SegmentCondition>;

export const segmentSplit = z
  .object({
    name: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[A-Za-z0-9_.-]+$/)
      .describe('Name of the group, the value of the split column.'),
    percent: z
      .number()
      .int()
      .min(1)
      .max(100)
      .describe('Share of the members in this group, in whole percent.'),
  })
  .describe('One group of a split.');

export const segmentSpec = withRules(
  z
    .object({
      parent: localObjectReference.describe(
        'The Model whose rows the segment selects from (it may be a segment itself).',
      ),
      where: segmentCondition.describe('The condition a row of the parent meets to be a member.'),
      splits: z
        .array(segmentSplit)
        .min(2)
        .max(20)
        .optional()
        .describe(
          'Deterministic groups by a hash of the primary key, e.g. treatment 90 and holdout 10; percents add up to 100.',
        ),
      splitColumn: segmentIdentifier
        .default('split_group')
        .describe(
          'Column that holds the group name of each member when splits are set (default split_group).',
        ),
      splitSalt: z
        .string()
        .max(253)
        .regex(/^[A-Za-z0-9_.:-]*$/)
        .default('')
        .describe('Mixed into the hash: a new salt draws new groups; the same salt keeps them across runs.'),
    })
    .describe(
      "A segment of another Model: its rows that meet a condition, with the parent's columns and primary key.",
    ),
  [
    {
      cel: '!has(self.splits) || self.splits.map(s, s.percent).sum() == 100',
      check: (s) => s.splits === undefined || s.splits.reduce((a, b) => a + b.percent, 0) === 100,
      message: 'the percents of splits must add up to 100',
      fieldPath: '.splits',
    },
    {
      cel: '!has(self.splits) || self.splits.all(a, self.splits.exists_one(b, b.name == a.name))',
      check: (s) => s.splits === undefined || new Set(s.splits.map((x) => x.name)).size === s.splits.length,
      message: 'each split needs a name of its own',
      fieldPath: '.splits',
    },
  ],
);
export type SegmentSpec = z.infer<typeof segmentSpec>;

export const segmentStatus = z
  .object({
    members: z.number().int().min(0).optional().describe('How many rows the segment had when last counted.'),
    countedAt: z.string().optional().describe('When the members were counted (RFC 3339).'),
    definitionHash: z.string().max(128).optional().describe('Hash of the compiled SQL the count is of.'),
  })
  .describe('Size preview of a segment.');
