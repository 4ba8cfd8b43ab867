import type { DuckDBConnection } from '@duckdb/node-api';
import type { ColumnInfo, SourceHashFunction, StagedHash } from '../core/connectors.ts';
import type { RowOperation, SyncMode } from '../crds/index.ts';
import type { Manifest } from '../core/diffstore/index.ts';
import { ident, literal, queryAll, queryOne, toCount } from './duck.ts';
import { fieldsSql, idempotencyKeySql } from './fields.ts';
import {
  SNAPSHOT_HASH,
  SNAPSHOT_KEY,
  SNAPSHOT_RECORD_ID,
  SNAPSHOT_STALE,
  type SyncShape,
} from './mappings.ts';
import { epochJoinSql, epochSql, loadPending, withPendingSql } from './pending.ts';
import {
  columnTypesKept,
  comparedConstants,
  constantsKept,
  ENGINE_HASH,
  hashColumns,
  hashedItems,
} from './snapshot-match.ts';
import { hashBy, hashFunctionOf, stagedHashOf } from './staging.ts';

/** The previous snapshot as this run sees it: its file on local disk and the manifest that made it current. */
export interface PreviousSnapshot {
  file: string;
  manifest: Manifest;
}

export interface DiffOptions {
  shape: SyncShape;
  /** Every staged model column (a column compared last run may no longer be mapped, yet still be read). */
  columns: ColumnInfo[];
  primaryKey: string;
  mode: SyncMode;
  deleteBehavior: 'ignore' | 'clear' | 'delete';
  archiveBehavior: 'archive' | 'delete';
  /** Undefined for a first run, or when the previous snapshot must not be used (primary key changed). */
  previous: PreviousSnapshot | undefined;
  /** Treat every row still in the model as changed. */
  resendAll: boolean;
  /** This runner's hash probe (see hashProbe). */
  hashProbe: string;
  /** The source's own hash function, when it stored hashes of it. */
  sourceHash?: SourceHashFunction | undefined;
  /** The row hashes the source stored in the staged table. */
  stagedHashes?: StagedHash[] | undefined;
  /** Keys the model holds more than once (table duplicate_keys). */
  duplicateKeys?: number;
  /** The local copy of the previous manifest's pending keys (Manifest.pending), when it has them. */
  pendingFile?: string | undefined;
  /** Table `prev` carries the destination's record ids (capabilities.recordIds). */
  recordIds?: boolean;
}

export interface DiffResult {
  added: number;
  changed: number;
  removed: number;
  /** Planned row operations by kind. */
  operations: Partial<Record<RowOperation, number>>;
  totalOperations: number;
  /** Deletes and clears caused by rows leaving the model: what the safety rail weighs. */
  removalDeletes: number;
  previousRows: number;
  /** What table `prev` holds, for writing the next snapshot. */
  previous: LoadedPrevious;
}

/** Table `prev` as loaded: always key text, stale flag and hash; the typed key when the snapshot has it. */
export interface LoadedPrevious {
  /** Type of the typed key column, when there is one. */
  keyType: string | undefined;
  /** The compared items `__syncline_hash` covers, in order. */
  hashed: string[];
  /** The model column of each of them whose name is not the column's. */
  sources: Record<string, string>;
  /** SQL (alias `p`): whether a compared constant (static value, template) changed since the row was sent. */
  constantsChanged: string;
  /** Whether this run can make hashes comparable with the previous ones (same function, same probe). */
  hashComparable: boolean;
  /** Who makes them: the engine in SQL, or the source (a staged hash). */
  hashBy: 'engine' | 'source';
  /** The function that made the previous hashes. */
  hashFunction: string;
}

const CONSTANTS_CHANGED = '__syncline_constants_changed';
/** The version 2 snapshot file as a view, before `prev` is made of it. */
const PREVIOUS_FILE = 'prev_file';

/**
 * SQL of one row's hash over `items` (alias `alias`). DuckDB's hash(): 64 bits, vectorised, defined for
 * every type (NULL, '' and 0 all differ; -0.0 equals 0.0). A changed row goes unnoticed only if its hash
 * collides, a chance of 2^-64 per changed row.
 */
export function rowHashSql(items: { sql: string; type: string }[]): string {
  if (items.length === 0) return 'CAST(NULL AS UBIGINT)';
  return `hash(${items.map((item) => `CAST(${item.sql} AS ${item.type})`).join(', ')})`;
}

/**
 * The hash of fixed sample values of many types. Stored in the manifest: a runner whose DuckDB hashes
 * differently (a version upgrade that changed hash()) sees a different probe and resends every row,
 * instead of taking every row for changed or, worse, for the same.
 */
export async function hashProbe(conn: DuckDBConnection): Promise<string> {
  const row = await queryOne(
    conn,
    `SELECT CAST(hash(42::BIGINT, -7::INTEGER, 'Syncline \u2713 ∑', NULL::VARCHAR, ''::VARCHAR, 1.5::DOUBLE,
      12.34::DECIMAL(12,2), 1234567890.123456789::DECIMAL(38,9), TRUE, DATE '2024-02-29',
      TIMESTAMP '2024-02-29 12:34:56.789', TIMESTAMPTZ '2024-02-29 12:34:56.789+00', '{"a":[1,2]}'::JSON,
      [1, 2, 3]::INTEGER[], {'a': 1, 'b': 'x'}, '\\xAA\\xBB'::BLOB, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID,
      INTERVAL 3 DAY, 170141183460469231731687303715884105727::HUGEINT) AS VARCHAR) AS probe`,
  );
  return String(row['probe']);
}

/** Types of the model columns as the previous run staged them. */
function previousTypes(manifest: Manifest): Map<string, string> {
  return new Map(manifest.columns.map((c) => [c.name, c.type]));
}

/**
 * Load the previous snapshot into table `prev` (k, stale, typed key, hash). A version 1 snapshot keeps
 * values: they are hashed here, over the columns it compared, with the types they were staged with.
 */
async function loadPrevious(conn: DuckDBConnection, options: DiffOptions): Promise<LoadedPrevious> {
  const { primaryKey } = options;
  const k = SNAPSHOT_KEY;
  const pk = ident(primaryKey);
  const previous = options.previous;
  // Loaded into a table rather than read in place: joins against a table can spill to disk under the
  // memory limit, while joins against a Parquet scan run out of memory first.
  const currentKeyType = options.columns.find((c) => c.name === primaryKey)?.type ?? 'VARCHAR';
  await loadPending(conn, { file: options.pendingFile, primaryKey, keyType: currentKeyType });
  // Keys an earlier run was about to touch are stale until a commit folded them into the snapshot.
  const pendingApplies = options.pendingFile !== undefined && previous?.manifest.pending?.folded === false;
  if (!previous) {
    const keyType = currentKeyType;
    const id = options.recordIds ? `, ${SNAPSHOT_RECORD_ID} VARCHAR` : '';
    await conn.run(
      `CREATE OR REPLACE TABLE prev (${k} VARCHAR, ${SNAPSHOT_STALE} BOOLEAN, ${pk} ${keyType}, ${SNAPSHOT_HASH} UBIGINT${id})`,
    );
    return {
      keyType,
      hashed: [],
      sources: {},
      constantsChanged: 'FALSE',
      hashComparable: true,
      hashBy: 'engine',
      hashFunction: ENGINE_HASH,
    };
  }
  const source = `read_parquet(${literal(previous.file)})`;
  const described = await queryAll(conn, `DESCRIBE SELECT * FROM ${source}`);
  const stored = new Map(described.map((r) => [String(r['column_name']), String(r['column_type'])]));
  const keyType = stored.get(primaryKey);
  const typedKey = keyType === undefined ? '' : `, p.${pk}`;
  const m = previous.manifest;
  if (m.version === 2) {
    // A view over the file first: a run whose rows all match never needs the table (see unchangedByChecksum).
    const file = `SELECT p.${k}, p.${SNAPSHOT_STALE}${typedKey}, p.${SNAPSHOT_HASH}${recordIdSql(options, stored)} FROM ${source} p`;
    const ids = options.recordIds === true;
    await conn.run(
      `CREATE OR REPLACE VIEW ${PREVIOUS_FILE} AS ${pendingApplies ? withPendingSql(file, primaryKey, keyType !== undefined, ids) : file}`,
    );
    const changed = !constantsKept(m, options.shape);
    const hashFunction = hashFunctionOf(m);
    const by = hashBy(hashFunction, options.sourceHash);
    const loaded = {
      keyType,
      hashed: m.comparedColumns,
      sources: m.comparedSources ?? {},
      constantsChanged: changed ? 'TRUE' : 'FALSE',
      hashBy: by ?? 'engine',
      hashFunction,
    };
    // The engine hashes in SQL at will; the source's hashes exist only where it stored them.
    const comparable =
      by === 'engine'
        ? m.hashProbe === options.hashProbe
        : by === 'source' &&
          m.hashProbe === options.sourceHash?.probe &&
          stagedHashOf(options.stagedHashes, 'source', previousColumnsOf(loaded)) !== undefined;
    return { ...loaded, hashComparable: comparable };
  }
  const types = previousTypes(m);
  const hashed = m.comparedColumns.filter((name) => stored.has(name) && types.has(name));
  const hash = rowHashSql(
    hashed.map((name) => ({
      sql: `TRY_CAST(p.${ident(name)} AS ${types.get(name)})`,
      type: types.get(name)!,
    })),
  );
  const constantTerms = Object.entries(comparedConstants(options.shape)).map(([name, value]) =>
    stored.has(name) ? `p.${ident(name)} IS DISTINCT FROM ${literal(value)}` : 'TRUE',
  );
  await conn.run(
    `CREATE OR REPLACE TABLE prev AS SELECT p.${k}, coalesce(p.${SNAPSHOT_STALE}, FALSE) AS ${SNAPSHOT_STALE}${typedKey}, ` +
      `${hash} AS ${SNAPSHOT_HASH}, ${constantTerms.join(' OR ') || 'FALSE'} AS ${CONSTANTS_CHANGED} FROM ${source} p`,
  );
  // Version 1 snapshots come from before record ids.
  if (options.recordIds) await conn.run(`ALTER TABLE prev ADD COLUMN ${SNAPSHOT_RECORD_ID} VARCHAR`);
  if (pendingApplies) {
    // A version 1 snapshot with an earlier run's pending keys (that run kept the snapshot as it was).
    await conn.run(`UPDATE prev SET ${SNAPSHOT_STALE} = TRUE WHERE ${k} IN (SELECT ${k} FROM prev_pending)`);
    const keyColumn = keyType === undefined ? '' : `, ${pk}`;
    const keyValue = keyType === undefined ? '' : `, TRY_CAST(pp.${pk} AS ${keyType})`;
    await conn.run(
      `INSERT INTO prev (${k}, ${SNAPSHOT_STALE}${keyColumn}, ${SNAPSHOT_HASH}, ${CONSTANTS_CHANGED}) ` +
        `SELECT pp.${k}, TRUE${keyValue}, NULL, FALSE FROM prev_pending pp WHERE pp.${k} NOT IN (SELECT ${k} FROM prev)`,
    );
  }
  return {
    keyType,
    hashed,
    sources: {},
    constantsChanged: `p.${CONSTANTS_CHANGED}`,
    hashComparable: true,
    hashBy: 'engine',
    hashFunction: ENGINE_HASH,
  };
}

/** The record id column of table `prev`, from the snapshot when it has one (snapshots before record ids do not). */
function recordIdSql(options: DiffOptions, stored: Map<string, string>): string {
  if (!options.recordIds) return '';
  return stored.has(SNAPSHOT_RECORD_ID)
    ? `, p.${SNAPSHOT_RECORD_ID}`
    : `, CAST(NULL AS VARCHAR) AS ${SNAPSHOT_RECORD_ID}`;
}

/** The model columns the previous hashes were made of, in order. */
function previousColumnsOf(loaded: Pick<LoadedPrevious, 'hashed' | 'sources'>): string[] {
  return hashColumns(loaded.hashed, loaded.sources);
}

/** SQL (aliases `c` current, `p` previous) telling whether a row still in the model must be sent again. */
function changedCondition(options: DiffOptions, loaded: LoadedPrevious): string {
  if (options.resendAll || !loaded.hashComparable) return 'TRUE';
  const current = new Map(options.columns.map((c) => [c.name, c.type]));
  const before = options.previous ? previousTypes(options.previous.manifest) : new Map<string, string>();
  const hashed: { sql: string; type: string }[] = [];
  for (const column of previousColumnsOf(loaded)) {
    const type = current.get(column);
    // A dropped column, or a changed type ('1' is not 1): every row counts as changed.
    if (type === undefined || before.get(column) !== type) return 'TRUE';
    hashed.push({ sql: `c.${ident(column)}`, type });
  }
  const terms = [`p.${SNAPSHOT_STALE}`, loaded.constantsChanged];
  const staged = stagedHashOf(options.stagedHashes, loaded.hashBy, previousColumnsOf(loaded));
  const currentHash = staged ? `c.${ident(staged.column)}` : rowHashSql(hashed);
  terms.push(hashed.length === 0 ? 'TRUE' : `p.${SNAPSHOT_HASH} IS DISTINCT FROM ${currentHash}`);
  // A column compared for the first time was never sent: it counts as null, so only rows with a value go.
  for (const item of hashedItems(options.shape)) {
    if (!loaded.hashed.includes(item.name)) terms.push(`${item.sql} IS NOT NULL`);
  }
  return terms.filter((t) => t !== 'FALSE').join(' OR ');
}

function operationSql(options: DiffOptions): string {
  const removal = options.deleteBehavior === 'ignore' ? 'NULL' : literal(options.deleteBehavior);
  switch (options.mode) {
    case 'upsert':
      return `CASE WHEN change = 'removed' THEN ${removal} ELSE 'upsert' END`;
    case 'update':
      return `CASE WHEN change = 'removed' THEN ${removal} ELSE 'update' END`;
    case 'insert':
      return `CASE WHEN change = 'removed' THEN ${removal} WHEN change = 'added' THEN 'insert' END`;
    case 'all':
      return `CASE WHEN change = 'removed' THEN 'delete' ELSE 'upsert' END`;
    case 'archive':
      return `CASE WHEN change = 'removed' THEN NULL ELSE ${literal(options.archiveBehavior)} END`;
  }
}

/** A diff with nothing in it yet. */
function noChanges(previousRows: number, previous: LoadedPrevious): DiffResult {
  return {
    added: 0,
    changed: 0,
    removed: 0,
    operations: {},
    totalOperations: 0,
    removalDeletes: 0,
    previousRows,
    previous,
  };
}

/**
 * Whether the model holds exactly the keys and hashes of the previous snapshot, found without joining
 * them: same row count, no stale row, and the same XOR over every row of hash(key, row hash) on both
 * sides. A run with a change passes only if its changes cancel out in that XOR, a chance of 2^-64 (the
 * key is inside each term, so values moving between keys do not cancel). Only where nothing but the
 * hashes decides: comparable hashes stored while staging, the same compared items and constants, no
 * changed column type, no duplicate keys.
 */
async function unchangedByChecksum(
  conn: DuckDBConnection,
  options: DiffOptions,
  loaded: LoadedPrevious,
  stagedColumn: string,
): Promise<boolean> {
  const m = options.previous?.manifest;
  if (!m || options.resendAll || !loaded.hashComparable || loaded.constantsChanged !== 'FALSE') return false;
  if ((options.duplicateKeys ?? 1) > 0) return false;
  if (hashedItems(options.shape).some((item) => !loaded.hashed.includes(item.name))) return false;
  if (!columnTypesKept(m, options.columns, previousColumnsOf(loaded))) return false;
  const pk = ident(options.primaryKey);
  const model = await queryOne(
    conn,
    `SELECT count(*) AS n, bit_xor(hash(${pk}, ${ident(stagedColumn)})) AS x FROM valid_rows`,
  );
  const snapshot = await queryOne(
    conn,
    `SELECT count(*) AS n, count(${pk}) AS keyed, bit_xor(hash(${pk}, ${SNAPSHOT_HASH})) AS x, ` +
      `coalesce(bool_or(${SNAPSHOT_STALE}), FALSE) AS stale FROM ${PREVIOUS_FILE}`,
  );
  return (
    snapshot['n'] === model['n'] &&
    snapshot['keyed'] === snapshot['n'] &&
    snapshot['stale'] === false &&
    model['x'] !== null &&
    snapshot['x'] === model['x']
  );
}

/**
 * Compare the model (view `valid_rows`) with the previous snapshot by primary key, entirely in DuckDB:
 * loads table `prev` and creates table `diff` with one row per key that is added, changed or removed (and,
 * for modes all and archive, unchanged), with the row operation it gets. Rows are compared by the hash of
 * their compared columns, so the join carries two numbers per row whatever the width of the model.
 */
export async function computeDiff(conn: DuckDBConnection, options: DiffOptions): Promise<DiffResult> {
  const { primaryKey } = options;
  const loaded = await loadPrevious(conn, options);
  const keepUnchanged = options.mode === 'all' || options.mode === 'archive';
  const k = SNAPSHOT_KEY;
  const pk = ident(primaryKey);
  const pkType = options.columns.find((c) => c.name === primaryKey)?.type;
  // Join on the typed key when the snapshot has it with the same type (much faster than text); the key
  // text is only built for the rows that differ.
  const previousKeyType = options.previous
    ? previousTypes(options.previous.manifest).get(primaryKey)
    : pkType;
  const typedJoin =
    pkType !== undefined && loaded.keyType === pkType && (previousKeyType ?? pkType) === pkType;
  const staged = stagedHashOf(options.stagedHashes, loaded.hashBy, previousColumnsOf(loaded));

  if (options.previous?.manifest.version === 2) {
    const unchanged =
      !keepUnchanged &&
      typedJoin &&
      staged !== undefined &&
      (await unchangedByChecksum(conn, options, loaded, staged.column));
    // Nothing to join when every row matches; later steps read the file when they need `prev` at all.
    await conn.run(
      `CREATE OR REPLACE ${unchanged ? 'VIEW' : 'TABLE'} prev AS SELECT * FROM ${PREVIOUS_FILE}`,
    );
    if (unchanged) {
      await conn.run(
        `CREATE OR REPLACE TABLE diff (${k} VARCHAR, change VARCHAR, op VARCHAR, current_key ${pkType}, previous_key ${pkType})`,
      );
      return noChanges(options.previous.manifest.rowCount, loaded);
    }
  }
  const join = typedJoin ? `c.${pk} = p.${pk}` : `CAST(c.${pk} AS VARCHAR) = p.${k}`;
  const fresh = hashedItems(options.shape).filter((i) => !loaded.hashed.includes(i.name));
  const read = new Set([
    primaryKey,
    ...(staged ? [] : previousColumnsOf(loaded)),
    ...fresh.map((i) => i.column ?? i.name),
  ]);
  const readColumns = options.columns.filter((c) => read.has(c.name)).map((c) => ident(c.name));
  if (staged) readColumns.push(ident(staged.column));
  // A key the model now holds more than once (left out with invalidPrimaryKeys: skip) is 'held': it has
  // not left the model, so it is neither deleted nor cleared, and its snapshot row is carried over.
  // The previous key value of a removed row (as last delivered) is kept, so that delivery reads the diff
  // and the model only.
  const previousKey = loaded.keyType !== undefined ? `p.${pk}` : 'NULL';
  if (!options.previous) {
    // A first sync (or one after a changed primary key): every row is added. A view, not a table of every
    // key: delivery reads the staged rows, and a table would copy each key out as text first.
    await conn.run(`
      CREATE OR REPLACE VIEW diff AS
      SELECT CAST(current_key AS VARCHAR) AS ${k}, change, ${operationSql(options)} AS op, current_key,
        CAST(NULL AS ${pkType ?? 'VARCHAR'}) AS previous_key
      FROM (SELECT c.${pk} AS current_key, 'added' AS change FROM valid_rows c)`);
  } else {
    await conn.run(`
    CREATE OR REPLACE TABLE diff AS
    SELECT coalesce(CAST(current_key AS VARCHAR), previous_text_key) AS ${k}, change, ${operationSql(options)} AS op,
      current_key, CASE WHEN change = 'removed' THEN previous_key END AS previous_key
    FROM (
      SELECT c.${pk} AS current_key, p.${k} AS previous_text_key, ${previousKey} AS previous_key,
        CASE WHEN p.${k} IS NULL OR (c.${pk} IS NOT NULL AND p.${SNAPSHOT_STALE} AND p.${SNAPSHOT_HASH} IS NULL) THEN 'added'
             WHEN c.${pk} IS NULL AND p.${k} IN (SELECT CAST(k AS VARCHAR) FROM duplicate_keys) THEN 'held'
             WHEN c.${pk} IS NULL THEN 'removed'
             WHEN ${changedCondition(options, loaded)} THEN 'changed'
             ELSE 'same' END AS change
      FROM (SELECT ${readColumns.join(', ')} FROM valid_rows) c FULL OUTER JOIN prev p ON ${join}
    ) ${keepUnchanged ? "WHERE change <> 'held'" : "WHERE change NOT IN ('same', 'held')"}`);
  }

  const groups = await queryAll(conn, 'SELECT change, op, count(*) AS n FROM diff GROUP BY ALL');
  const result = noChanges(options.previous?.manifest.rowCount ?? 0, loaded);
  for (const g of groups) {
    const n = toCount(g['n']);
    const change = g['change'] as string;
    const op = g['op'] as RowOperation | null;
    if (change === 'added') result.added += n;
    else if (change === 'changed') result.changed += n;
    else if (change === 'removed') result.removed += n;
    if (op !== null) {
      result.operations[op] = (result.operations[op] ?? 0) + n;
      result.totalOperations += n;
      if (change === 'removed' && (op === 'delete' || op === 'clear')) result.removalDeletes += n;
    }
  }
  return result;
}

/**
 * The row operations of the diff, one JSON text per row shaped as the RowChange a destination receives
 * (built in DuckDB: fields, and the idempotency key), plus the row's columns and kind of change when
 * Liquid templates must be rendered in JavaScript.
 */
export function operationsQuery(options: {
  shape: SyncShape;
  primaryKey: string;
  syncId: string;
  /** The idempotency epoch of changes no earlier run planned (this run's id). */
  runId: string;
  where?: string;
  limit?: number;
  /** Each change carries the record id the snapshot keeps for its key (capabilities.recordIds). */
  recordIds?: boolean;
}): string {
  const k = SNAPSHOT_KEY;
  const id = options.recordIds ? `, 'recordId', ${SNAPSHOT_RECORD_ID}` : '';
  // Only a key whose last delivery is known (not stale) has a record id to trust: a stale key's write may
  // have made another record (an upsert whose answer was lost recreates one a person or an archive removed),
  // so the destination looks it up by its match value instead.
  const idColumn = options.recordIds
    ? `, CASE WHEN pr.${SNAPSHOT_STALE} THEN NULL ELSE pr.${SNAPSHOT_RECORD_ID} END AS ${SNAPSHOT_RECORD_ID}`
    : '';
  const idJoin = options.recordIds ? ` LEFT JOIN prev pr ON pr.${k} = d.${k}` : '';
  const sql = fieldsSql(options.shape, options.primaryKey, 'd.previous_key');
  const context = sql.context ? `, 'context', context_json` : '';
  const contextColumn = sql.context ? `, ${sql.context} AS context_json` : '';
  const fields =
    `CASE WHEN d.change <> 'removed' THEN ${sql.fields} ` +
    `WHEN d.op = 'clear' THEN ${sql.removal.clear} ELSE ${sql.removal.delete} END`;
  const change = sql.row
    ? `json_object('operation', op, 'key', ${k}, 'fields', fields, 'change', change, 'row', row_json, 'epoch', epoch${id}${context})`
    : `json_object('operation', op, 'key', ${k}, 'fields', fields, 'idempotencyKey', ${idempotencyKeySql(options.syncId, k, 'op', 'fields', 'epoch')}${id}${context})`;
  return (
    `SELECT CAST(${change} AS VARCHAR) AS change_json FROM (` +
    `SELECT d.op, d.${k}, d.change, ${fields} AS fields, ${epochSql(options.runId)} AS epoch${sql.row ? `, ${sql.row} AS row_json` : ''}${idColumn}${contextColumn} ` +
    `FROM diff d ${epochJoinSql()} LEFT JOIN valid_rows c ON c.${ident(options.primaryKey)} = d.current_key${idJoin} ` +
    `WHERE d.op IS NOT NULL${options.where ? ` AND (${options.where})` : ''}` +
    (options.limit === undefined ? '' : ` LIMIT ${options.limit}`) +
    ')'
  );
}
