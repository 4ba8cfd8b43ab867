import { sql, type Expression, type RawBuilder } from 'kysely';
import type {
  ColumnCondition,
  FilterableColumn,
  RelatedCondition,
  SegmentCondition,
  SegmentValue,
} from '../../crds/index.ts';
import { COMPARISON_OPERATORS } from '../../crds/segment.ts';
import { SynclineError } from '../errors.ts';
import { builderFor, containsText, relativeEnd, relativeStart, type SegmentDialect } from './dialects.ts';
import {
  IN_SEGMENT_MAX_DEPTH,
  columnOf,
  relatedModel,
  relationshipOf,
  resolveChain,
  type ModelLookup,
  type NamedModel,
} from './resolve.ts';
import { splitExpression } from './splits.ts';

type Bool = RawBuilder<boolean>;

export interface CompiledSegment {
  /** One SELECT in the Source's dialect: the root Model's columns (and the split column) of each member. */
  sql: string;
  /** The root Model's primary key, the segment's too. */
  primaryKey: string;
  /** The Model whose rows the segment selects from. */
  root: string;
  /** Every Model the segment reads or names (parents, related Models, segments of inSegment). */
  dependsOn: string[];
}

interface Context {
  dialect: SegmentDialect;
  lookup: ModelLookup;
  root: NamedModel;
  dependsOn: Set<string>;
  aliases: number;
  /** Segments being expanded through inSegment, for cycles and depth. */
  stack: string[];
}

/** The SQL of a Model's own rows (a query or a table), as a parenthesised relation. */
export function relationOf(model: NamedModel, dialect: SegmentDialect): RawBuilder<unknown> {
  const { query, table } = model.spec;
  if (query !== undefined) return sql`(${sql.raw(query.trim().replace(/;+\s*$/, ''))})`;
  if (table !== undefined) {
    // A files Source's table is a file name or glob, which DuckDB reads as a string in FROM.
    if (dialect === 'duckdb') return sql`(SELECT * FROM ${sql.lit(table)})`;
    const parts = table.split('.').map((p) => {
      const quoted = /^"(.*)"$/.exec(p);
      if (quoted) return { name: quoted[1] as string, quoted: true };
      return { name: dialect === 'postgres' ? p.toLowerCase() : p, quoted: false };
    });
    // Snowflake's compiler upper-cases every name; a part the Model quotes keeps its case.
    if (dialect === 'snowflake')
      return sql`(SELECT * FROM ${sql.raw(parts.map((p) => `"${(p.quoted ? p.name : p.name.toUpperCase()).replace(/"/g, '""')}"`).join('.'))})`;
    return sql`(SELECT * FROM ${sql.id(...parts.map((p) => p.name))})`;
  }
  throw new SynclineError(
    'InvalidSegment',
    `Model "${model.name}" is ${model.spec.segment ? 'a segment' : 'neither a query nor a table'}: segments read the rows of a query or table Model (a dbt or BI Model: declare its table instead)`,
  );
}

const NUMBER_TEXT = /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;

/** A condition's value as the column's type needs it: numbers may be written as text ("10.5"). */
function valueFor(column: FilterableColumn, value: SegmentValue, where: string): string | number | boolean {
  if (column.type === 'number') {
    if (typeof value === 'number') return value;
    if (NUMBER_TEXT.test(value.trim())) return Number(value.trim());
  } else if (column.type === 'boolean') {
    if (value === 'true' || value === 'false') return value === 'true';
  } else if (column.type === 'string') {
    return String(value);
  } else if (typeof value === 'string') {
    return value;
  }
  throw new SynclineError(
    'InvalidSegment',
    `${where}: column "${column.name}" is of type ${column.type}, and ${JSON.stringify(value)} is not one${
      column.type === 'boolean'
        ? ' (use isTrue or isFalse)'
        : column.type === 'number'
          ? ' (a number, e.g. 500 or "10.5")'
          : ' (ISO 8601 text)'
    }`,
  );
}

/** One comparison of a column, of `alias`'s row. */
function comparison(ctx: Context, model: NamedModel, alias: string, c: ColumnCondition, where: string): Bool {
  const column = columnOf(model, c.column, where);
  const ref = sql.ref(`${alias}.${column.name}`);
  const lit = (v: SegmentValue) => sql.lit(valueFor(column, v, where));
  const list = (vs: SegmentValue[]) => sql.join(vs.map(lit));
  const ordered = (op: string) => {
    if (column.type === 'boolean')
      throw new SynclineError(
        'InvalidSegment',
        `${where}: ${op} does not apply to the boolean column "${column.name}"`,
      );
  };
  const date = column.type === 'date';
  if (c.equals !== undefined) return sql<boolean>`${ref} = ${lit(c.equals)}`;
  if (c.notEquals !== undefined) return sql<boolean>`${ref} <> ${lit(c.notEquals)}`;
  if (c.in !== undefined) return sql<boolean>`${ref} IN (${list(c.in)})`;
  if (c.notIn !== undefined) return sql<boolean>`${ref} NOT IN (${list(c.notIn)})`;
  if (c.isNull) return sql<boolean>`${ref} IS NULL`;
  if (c.isTrue || c.isFalse) {
    if (column.type !== 'boolean')
      throw new SynclineError(
        'InvalidSegment',
        `${where}: ${c.isTrue ? 'isTrue' : 'isFalse'} applies to boolean columns, and "${column.name}" is a ${column.type}`,
      );
    return sql<boolean>`${ref} = ${sql.lit(c.isTrue === true)}`;
  }
  if (c.isNotNull) return sql<boolean>`${ref} IS NOT NULL`;
  if (c.contains !== undefined) {
    if (column.type !== 'string')
      throw new SynclineError(
        'InvalidSegment',
        `${where}: contains applies to string columns, and "${column.name}" is a ${column.type}`,
      );
    return containsText(ctx.dialect, ref, c.contains);
  }
  if (c.inLast !== undefined) {
    if (column.type !== 'date' && column.type !== 'timestamp')
      throw new SynclineError(
        'InvalidSegment',
        `${where}: inLast applies to date and timestamp columns, and "${column.name}" is a ${column.type}`,
      );
    const start = relativeStart(ctx.dialect, c.inLast.amount, c.inLast.unit, date);
    return sql<boolean>`(${ref} >= ${start} AND ${ref} <= ${relativeEnd(ctx.dialect, date)})`;
  }
  if (c.between !== undefined) {
    ordered('between');
    const [low, high] = c.between as [SegmentValue, SegmentValue];
    return sql<boolean>`${ref} BETWEEN ${lit(low)} AND ${lit(high)}`;
  }
  for (const [op, symbol] of [
    ['gt', '>'],
    ['gte', '>='],
    ['lt', '<'],
    ['lte', '<='],
  ] as const) {
    const value = c[op];
    if (value === undefined) continue;
    ordered(op);
    return sql<boolean>`${ref} ${sql.raw(symbol)} ${lit(value)}`;
  }
  throw new SynclineError(
    'InvalidSegment',
    `${where}: the condition on "${column.name}" names no operator (${COMPARISON_OPERATORS.join(', ')})`,
  );
}

const AGGREGATE_SYMBOLS = [
  ['equals', '='],
  ['notEquals', '<>'],
  ['gt', '>'],
  ['gte', '>='],
  ['lt', '<'],
  ['lte', '<='],
] as const;

function hasComparison(c: RelatedCondition): boolean {
  return c.between !== undefined || AGGREGATE_SYMBOLS.some(([op]) => c[op] !== undefined);
}

function aggregateComparison(value: Expression<unknown>, c: RelatedCondition): Bool | undefined {
  if (c.between !== undefined)
    return sql<boolean>`${value} BETWEEN ${sql.lit(c.between[0] ?? 0)} AND ${sql.lit(c.between[1] ?? 0)}`;
  for (const [op, symbol] of AGGREGATE_SYMBOLS) {
    const n = c[op];
    if (n !== undefined) return sql<boolean>`${value} ${sql.raw(symbol)} ${sql.lit(n)}`;
  }
  return undefined;
}

/** A condition on the related rows: EXISTS, or an aggregate of them compared with a number. */
function related(ctx: Context, c: RelatedCondition, where: string): Bool {
  const rel = relationshipOf(ctx.root, c.relationship, where);
  const model = relatedModel(ctx.root, rel, ctx.lookup);
  ctx.dependsOn.add(model.name);
  const alias = `r${ctx.aliases++}`;
  const db = builderFor(ctx.dialect);
  let rows = db
    .selectFrom(relationOf(model, ctx.dialect).as(alias))
    .where(sql<boolean>`${sql.ref(`${alias}.${rel.relatedColumn}`)} = ${sql.ref(`p.${rel.column}`)}`);
  (c.where ?? []).forEach((w, i) => {
    rows = rows.where(comparison(ctx, model, alias, w, `${where}.where[${i}]`));
  });
  let value: Expression<unknown>;
  // Defaults are the API server's to apply; an object read without them means the same.
  const aggregate = c.aggregate ?? 'count';
  if (aggregate === 'count') {
    if (!hasComparison(c)) return sql<boolean>`EXISTS (${rows.select(sql.lit(1).as('one'))})`;
    value = sql`(${rows.select(sql`COUNT(*)`.as('n'))})`;
  } else {
    const column = columnOf(model, c.column ?? '', `${where}.column`);
    if (column.type !== 'number' && (aggregate === 'sum' || aggregate === 'avg'))
      throw new SynclineError(
        'InvalidSegment',
        `${where}: ${aggregate} needs a number column, and "${column.name}" is a ${column.type}`,
      );
    const fn = sql.raw(aggregate.toUpperCase());
    value = sql`(${rows.select(sql`${fn}(${sql.ref(`${alias}.${column.name}`)})`.as('v'))})`;
  }
  const compared = aggregateComparison(value, c);
  if (!compared)
    throw new SynclineError('InvalidSegment', `${where}: ${aggregate} needs a comparison, e.g. gt: 500`);
  return compared;
}

/** Another segment's conditions, which must share this segment's root Model. */
function inSegment(ctx: Context, name: string, where: string): Bool {
  if (ctx.stack.includes(name))
    throw new SynclineError(
      'SegmentCycle',
      `inSegment refers back to a segment being defined: ${[...ctx.stack, name].join(' -> ')}`,
    );
  if (ctx.stack.length > IN_SEGMENT_MAX_DEPTH)
    throw new SynclineError(
      'SegmentTooDeep',
      `${where}: inSegment nests more than ${IN_SEGMENT_MAX_DEPTH} segments deep (${ctx.stack.join(' -> ')})`,
    );
  const spec = ctx.lookup(name);
  if (!spec)
    throw new SynclineError(
      'SegmentNotFound',
      `${where}: inSegment Model "${name}" does not exist in the namespace`,
    );
  if (!spec.segment)
    throw new SynclineError('InvalidSegment', `${where}: inSegment Model "${name}" is not a segment`);
  const chain = resolveChain({ name, spec }, ctx.lookup, ctx.stack);
  if (chain.root.name !== ctx.root.name)
    throw new SynclineError(
      'InvalidSegment',
      `${where}: segment "${name}" selects from Model "${chain.root.name}", not "${ctx.root.name}"`,
    );
  ctx.dependsOn.add(name);
  chain.dependsOn.forEach((d) => ctx.dependsOn.add(d));
  const inner = { ...ctx, stack: [...ctx.stack, name] };
  const parts = chain.conditions.map((cond, i) =>
    condition(inner, cond, `segment "${name}" where${i ? ` (parent ${i})` : ''}`),
  );
  const result = sql<boolean>`(${sql.join(parts, sql` AND `)})`;
  ctx.aliases = inner.aliases;
  return result;
}

function condition(ctx: Context, c: SegmentCondition, where: string): Bool {
  let result: Bool;
  if (c.and !== undefined) result = group(ctx, c.and, 'AND', `${where}.and`);
  else if (c.or !== undefined) result = group(ctx, c.or, 'OR', `${where}.or`);
  else if (c.related !== undefined) result = related(ctx, c.related, `${where}.related`);
  else if (c.inSegment !== undefined) result = inSegment(ctx, c.inSegment.name, `${where}.inSegment`);
  else if (c.column !== undefined) result = comparison(ctx, ctx.root, 'p', c as ColumnCondition, where);
  else
    throw new SynclineError(
      'InvalidSegment',
      `${where}: a condition needs and, or, column, related or inSegment`,
    );
  // Two-valued: a comparison with NULL is false, so its negation is true (not: equals DE keeps null countries).
  return c.not ? sql<boolean>`NOT COALESCE(${result}, FALSE)` : result;
}

function group(ctx: Context, items: SegmentCondition[], op: 'AND' | 'OR', where: string): Bool {
  const parts = items.map((item, i) => condition(ctx, item, `${where}[${i}]`));
  return sql<boolean>`(${sql.join(parts, sql.raw(` ${op} `))})`;
}

/**
 * Compile a segment Model to one SELECT in `dialect`: the root Model's rows that meet the conditions of
 * the segment and of each segment above it, with the split column when the segment has splits.
 */
export function compileSegment(
  model: NamedModel,
  dialect: SegmentDialect,
  lookup: ModelLookup,
): CompiledSegment {
  const segment = model.spec.segment;
  if (!segment) throw new SynclineError('InvalidSegment', `Model "${model.name}" has no spec.segment`);
  const chain = resolveChain(model, lookup);
  const { root } = chain;
  const primaryKey = root.spec.primaryKey;
  if (!primaryKey)
    throw new SynclineError(
      'InvalidSegment',
      `the root Model "${root.name}" of segment "${model.name}" names no primaryKey`,
    );
  const ctx: Context = { dialect, lookup, root, dependsOn: chain.dependsOn, aliases: 0, stack: [model.name] };
  const conditions = chain.conditions.map((c, i) =>
    condition(
      ctx,
      c,
      i === chain.conditions.length - 1 ? 'spec.segment.where' : `parent segment ${i + 1}'s where`,
    ),
  );
  const db = builderFor(dialect);
  let query = db.selectFrom(relationOf(root, dialect).as('p')).selectAll('p');
  if (segment.splits) {
    const split = { splits: segment.splits, splitSalt: segment.splitSalt ?? '' };
    const column = segment.splitColumn ?? 'split_group';
    query = query.select(splitExpression(dialect, sql.ref(`p.${primaryKey}`), split).as(column));
  }
  for (const c of conditions) query = query.where(c);
  const compiled = query.compile();
  // Every value is a literal of the compiler's; a bound parameter here would be lost on the way to the Source.
  if (compiled.parameters.length > 0) throw new Error('segment SQL must carry no parameters');
  return { sql: compiled.sql, primaryKey, root: root.name, dependsOn: [...ctx.dependsOn].sort() };
}
