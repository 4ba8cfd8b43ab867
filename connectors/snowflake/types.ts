// How a Snowflake result column becomes a DuckDB column. Values arrive as text (fetchAsString, with the
// output formats of OUTPUT_FORMATS), so every cast below is from exact text.
import type { TextColumn } from '../shared/text-stage.ts';

/** Session parameters sent with the model query so that every value's text is exact and parseable. */
export const OUTPUT_FORMATS: Record<string, string> = {
  TIMEZONE: 'UTC',
  DATE_OUTPUT_FORMAT: 'YYYY-MM-DD',
  TIME_OUTPUT_FORMAT: 'HH24:MI:SS.FF9',
  TIMESTAMP_NTZ_OUTPUT_FORMAT: 'YYYY-MM-DD HH24:MI:SS.FF9',
  // DuckDB reads an offset only when it follows the time directly.
  TIMESTAMP_LTZ_OUTPUT_FORMAT: 'YYYY-MM-DD HH24:MI:SS.FF9TZH:TZM',
  TIMESTAMP_TZ_OUTPUT_FORMAT: 'YYYY-MM-DD HH24:MI:SS.FF9TZH:TZM',
  TIMESTAMP_OUTPUT_FORMAT: 'YYYY-MM-DD HH24:MI:SS.FF9TZH:TZM',
  BINARY_OUTPUT_FORMAT: 'HEX',
};

export interface SnowflakeColumnMeta {
  name: string;
  type: string;
  precision?: number | null;
  scale?: number | null;
}

/** Integers of up to 18 digits fit a BIGINT; wider NUMBERs stay DECIMAL (38 digits at most in Snowflake). */
const BIGINT_DIGITS = 18;

export function planColumn(column: SnowflakeColumnMeta): TextColumn {
  const plan = (duckType: string, load?: TextColumn['load']): TextColumn => ({
    name: column.name,
    duckType,
    sourceType: column.type.toUpperCase(),
    load,
  });
  const scale = column.scale ?? 0;
  switch (column.type.toLowerCase()) {
    case 'fixed': {
      const precision = column.precision ?? 38;
      if (scale === 0 && precision <= BIGINT_DIGITS)
        return { ...plan('BIGINT'), sourceType: `NUMBER(${precision},0)` };
      return { ...plan(`DECIMAL(${precision},${scale})`), sourceType: `NUMBER(${precision},${scale})` };
    }
    case 'real':
      return { ...plan('DOUBLE'), sourceType: 'FLOAT' };
    case 'boolean':
      return plan('BOOLEAN');
    case 'date':
      return plan('DATE');
    case 'time':
      return { ...plan(scale > 6 ? 'TIME_NS' : 'TIME'), sourceType: `TIME(${scale})` };
    case 'timestamp_ntz':
      // Nanosecond precision needs TIMESTAMP_NS; up to microseconds a plain TIMESTAMP is exact.
      return {
        ...plan(
          scale > 6 ? 'TIMESTAMP_NS' : 'TIMESTAMP',
          scale > 6 ? undefined : (f) => `CAST(CAST(${f} AS TIMESTAMP_NS) AS TIMESTAMP)`,
        ),
        sourceType: `TIMESTAMP_NTZ(${scale})`,
      };
    case 'timestamp_ltz':
    case 'timestamp_tz':
      // An instant: DuckDB keeps it in UTC with microsecond precision (the original offset is not kept).
      return {
        ...plan('TIMESTAMP WITH TIME ZONE', (f) => `CAST(${f} AS TIMESTAMPTZ)`),
        sourceType: `${column.type.toUpperCase()}(${scale})`,
      };
    case 'binary':
      return plan('BLOB');
    case 'variant':
    case 'object':
    case 'array':
    case 'map':
      return plan('JSON');
    default:
      return {
        ...plan('VARCHAR'),
        sourceType: column.type === 'text' ? 'VARCHAR' : column.type.toUpperCase(),
      };
  }
}
