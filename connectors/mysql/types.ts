// How a MySQL / MariaDB result column becomes a DuckDB column. The driver hands every value over as the
// raw bytes of the text protocol (see source.ts); `convert` turns those bytes into the text DuckDB casts.
import mysql from 'mysql2';
import type { TextColumn, TextValue } from '../shared/text-stage.ts';

const { Types } = mysql;

/** The metadata this module reads from a mysql2 FieldPacket. */
export interface MysqlField {
  name: string;
  columnType?: number;
  type?: number;
  characterSet?: number;
  columnLength?: number;
  decimals: number;
  flags: number | string[];
  extendedTypeName?: string;
  extendedFormat?: string;
}

export interface MysqlColumnPlan extends TextColumn {
  convert: (raw: Buffer) => TextValue;
}

const BINARY_CHARSET = 63;
const UNSIGNED_FLAG = 32;
const MAX_DECIMAL_PRECISION = 38;

const utf8 = (raw: Buffer): string => raw.toString('utf8');
const bytes = (raw: Buffer): Buffer => raw;
/** MySQL's "zero" dates (0000-00-00) are not dates; they arrive as NULL. */
const temporal = (raw: Buffer): string | null => {
  const text = raw.toString('latin1');
  return text.startsWith('0000-00-00') ? null : text;
};
/** BIT(n) arrives as n bits, big-endian. */
const bits = (raw: Buffer): string => {
  let value = 0n;
  for (const byte of raw) value = (value << 8n) | BigInt(byte);
  return value.toString();
};

function isUnsigned(field: MysqlField): boolean {
  return typeof field.flags === 'number'
    ? (field.flags & UNSIGNED_FLAG) !== 0
    : field.flags.includes('UNSIGNED');
}

/** DECIMAL(p,s) from the column length, which counts the digits plus one for the point and one for the sign. */
export function decimalType(field: MysqlField): string {
  const scale = field.decimals;
  const precision = (field.columnLength ?? 0) - (scale > 0 ? 1 : 0) - (isUnsigned(field) ? 0 : 1);
  if (precision < 1 || precision > MAX_DECIMAL_PRECISION || scale > precision) return 'VARCHAR';
  return `DECIMAL(${precision},${scale})`;
}

export function planColumn(field: MysqlField): MysqlColumnPlan {
  const type = field.columnType ?? field.type ?? Types.VAR_STRING;
  const unsigned = isUnsigned(field);
  const plan = (
    duckType: string,
    sourceType: string,
    convert: MysqlColumnPlan['convert'] = utf8,
  ): MysqlColumnPlan => ({
    name: field.name,
    duckType,
    sourceType,
    convert,
  });
  if (field.extendedFormat === 'json' || type === Types.JSON) return plan('JSON', 'json');
  if (field.extendedTypeName === 'uuid') return plan('UUID', 'uuid');
  switch (type) {
    case Types.TINY:
      return plan(unsigned ? 'UTINYINT' : 'TINYINT', 'tinyint');
    case Types.SHORT:
      return plan(unsigned ? 'USMALLINT' : 'SMALLINT', 'smallint');
    case Types.INT24:
      return plan('INTEGER', 'mediumint');
    case Types.LONG:
      return plan(unsigned ? 'UINTEGER' : 'INTEGER', 'int');
    case Types.LONGLONG:
      return plan(unsigned ? 'UBIGINT' : 'BIGINT', 'bigint');
    case Types.YEAR:
      return plan('SMALLINT', 'year');
    case Types.FLOAT:
      return plan('FLOAT', 'float');
    case Types.DOUBLE:
      return plan('DOUBLE', 'double');
    case Types.DECIMAL:
    case Types.NEWDECIMAL:
      // Beyond DECIMAL(38) the exact text is kept rather than rounded.
      return plan(decimalType(field), 'decimal', (raw) => raw.toString('latin1'));
    case Types.BIT:
      return plan('UBIGINT', 'bit', bits);
    case Types.DATE:
    case Types.NEWDATE:
      return plan('DATE', 'date', temporal);
    case Types.DATETIME:
      return plan('TIMESTAMP', 'datetime', temporal);
    case Types.TIMESTAMP:
      // The session runs in UTC (source.ts), so the text is a UTC instant.
      return {
        ...plan('TIMESTAMP WITH TIME ZONE', 'timestamp', temporal),
        load: (f) => `CAST(${f} || '+00' AS TIMESTAMPTZ)`,
      };
    case Types.TIME:
      return plan('TIME', 'time');
    case Types.GEOMETRY:
      return plan('BLOB', 'geometry', bytes);
    case Types.NULL:
      return plan('VARCHAR', 'null');
    case Types.ENUM:
    case Types.SET:
      return plan('VARCHAR', type === Types.ENUM ? 'enum' : 'set');
    default: {
      // CHAR, VARCHAR, TEXT and BLOB family: the binary character set means bytes, anything else text.
      const binary = field.characterSet === BINARY_CHARSET;
      return binary ? plan('BLOB', 'binary', bytes) : plan('VARCHAR', 'text');
    }
  }
}
