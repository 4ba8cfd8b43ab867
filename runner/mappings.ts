import { createHash } from 'node:crypto';
import { Liquid, type Template } from 'liquidjs';
import type { Mapping } from '../crds/index.ts';
import type { ColumnInfo } from '../core/connectors.ts';
import { ident, literal } from './duck.ts';
import { SynclineError } from '../core/errors.ts';

/** A value the snapshot keeps per row, so that a change of it resends the row. */
export interface ComparedItem {
  /** Column name in the snapshot. */
  name: string;
  /** SQL over the current model rows (alias `c`). */
  sql: string;
  /** DuckDB type of the value. */
  type: string;
  /** The model column it is, when it is one. */
  column?: string;
  /** The text of a static value or template: the same for every row, so compared once per run. */
  constant?: string;
}

/** What a Sync reads from the model and compares between runs, derived once per run. */
export interface SyncShape {
  mappings: Mapping[];
  /** Model columns a row needs for delivery (mapped, template variables, and the primary key). */
  readColumns: ColumnInfo[];
  compared: ComparedItem[];
  templates: Map<string, Template[]>;
  /** Destination fields that carry the primary key (mappings from the key column). */
  keyFields: string[];
  /**
   * Model columns the destination reads besides the mapped fields (an association's match value):
   * delivered in RowChange.context, and compared, so that a change of one resends the row.
   */
  contextColumns: ColumnInfo[];
}

export {
  SNAPSHOT_HASH,
  SNAPSHOT_KEY,
  SNAPSHOT_RECORD_ID,
  SNAPSHOT_STALE,
} from '../core/diffstore/snapshot-store.ts';
const STATIC_PREFIX = '__syncline_value:';
const TEMPLATE_PREFIX = '__syncline_template:';

export const liquid = new Liquid({ strictFilters: true, ownPropertyOnly: true });

/** Mappings omitted: every column to a field of the same name. */
export function effectiveMappings(mappings: Mapping[] | undefined, columns: ColumnInfo[]): Mapping[] {
  return mappings ?? columns.map((c) => ({ to: c.name, from: c.name, valueType: 'string' as const }));
}

function unknownColumn(column: string, where: string, columns: ColumnInfo[]): SynclineError {
  return new SynclineError(
    'UnknownColumn',
    `${where} reads column "${column}", which the model does not have; the model's columns are: ` +
      `${columns.map((c) => c.name).join(', ')}. Fix the mapping or the model query.`,
  );
}

/**
 * Check the mappings against the staged columns and work out the compared values: the columns the
 * mappings read (or every column, for destinations that compare all of them), plus each static value and
 * template text, so that editing one resends the rows it changes.
 */
export function resolveShape(options: {
  mappings: Mapping[] | undefined;
  columns: ColumnInfo[];
  primaryKey: string;
  comparesAllColumns: boolean;
  /** Columns the destination needs besides the mappings (Sync.spec.target.associations[].from). */
  contextColumns?: string[] | undefined;
}): SyncShape {
  const { columns, primaryKey } = options;
  const byName = new Map(columns.map((c) => [c.name, c]));
  if (!byName.has(primaryKey)) throw unknownColumn(primaryKey, 'the primary key', columns);
  const mappings = effectiveMappings(options.mappings, columns);
  const read = new Set<string>([primaryKey]);
  const context = [...new Set(options.contextColumns ?? [])].map((name) => {
    const column = byName.get(name);
    if (!column) throw unknownColumn(name, 'an association (target.associations[].from)', columns);
    read.add(name);
    return column;
  });
  let readsAll = options.comparesAllColumns;
  const templates = new Map<string, Template[]>();
  const definitions: ComparedItem[] = [];
  for (const m of mappings) {
    if (m.from !== undefined) {
      if (!byName.has(m.from)) throw unknownColumn(m.from, `mapping to "${m.to}"`, columns);
      read.add(m.from);
    } else if (m.template !== undefined) {
      let parsed: Template[];
      try {
        parsed = liquid.parse(m.template);
      } catch (error) {
        throw new SynclineError(
          'InvalidTemplate',
          `the template of mapping "${m.to}" does not parse: ${(error as Error).message}`,
        );
      }
      templates.set(m.to, parsed);
      for (const segments of liquid.globalVariableSegmentsSync(parsed)) {
        if (segments[0] !== 'row') continue;
        const column = segments[1];
        if (column === undefined) readsAll = true;
        else if (typeof column === 'string') {
          if (!byName.has(column)) throw unknownColumn(column, `the template of mapping "${m.to}"`, columns);
          read.add(column);
        } else readsAll = true; // row[some_variable]: any column may be read
      }
      definitions.push({
        name: TEMPLATE_PREFIX + m.to,
        sql: literal(m.template),
        type: 'VARCHAR',
        constant: m.template,
      });
    } else {
      const value = JSON.stringify(staticValue(m));
      definitions.push({ name: STATIC_PREFIX + m.to, sql: literal(value), type: 'VARCHAR', constant: value });
    }
  }
  const readColumns = readsAll ? columns : columns.filter((c) => read.has(c.name));
  // A column sent to a field of another name is compared once more under that pair: renaming the field (or
  // filling it from another column) makes it a field never sent, which resends the rows that have a value.
  const renamed = new Map<string, ComparedItem>();
  for (const m of mappings) {
    const column = m.from === undefined ? undefined : byName.get(m.from);
    if (column === undefined || m.to === column.name) continue;
    const name = `${m.to}=${column.name}`;
    renamed.set(name, { name, sql: `c.${ident(column.name)}`, type: column.type, column: column.name });
  }
  const compared: ComparedItem[] = [
    ...readColumns.map((c) => ({ name: c.name, sql: `c.${ident(c.name)}`, type: c.type, column: c.name })),
    ...renamed.values(),
    ...definitions,
  ];
  return {
    mappings,
    readColumns,
    compared,
    templates,
    keyFields: mappings.filter((m) => m.from === primaryKey).map((m) => m.to),
    contextColumns: context,
  };
}

/** A static mapping's value, typed as its valueType says. */
export function staticValue(m: Mapping): unknown {
  const text = m.value ?? '';
  switch (m.valueType) {
    case 'number':
      return Number(text);
    case 'boolean':
      return text.trim().toLowerCase() === 'true';
    case 'json':
      try {
        return JSON.parse(text) as unknown;
      } catch (error) {
        throw new SynclineError(
          'InvalidMapping',
          `the value of mapping "${m.to}" is not valid JSON: ${(error as Error).message}`,
        );
      }
    default:
      return text;
  }
}

/** The model's fingerprint: its column names and primary key. A new one means a full resync. */
export function modelFingerprint(columns: ColumnInfo[], primaryKey: string): string {
  const names = columns.map((c) => c.name).sort();
  return createHash('sha256').update(JSON.stringify({ names, primaryKey })).digest('hex').slice(0, 32);
}
