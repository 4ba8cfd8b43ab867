// RFC 4180 CSV as Bulk API 2.0 reads and writes it: double-quoted fields with "" for a quote, fields
// that may hold the delimiter and line breaks, and the job's line ending checked outside quotes.

export interface ParsedCsv {
  rows: string[][];
  /** The record terminators seen outside quotes. */
  terminators: Set<'LF' | 'CRLF'>;
}

export function parseCsv(text: string, delimiter = ','): ParsedCsv {
  const rows: string[][] = [];
  const terminators = new Set<'LF' | 'CRLF'>();
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let i = 0;
  const endRow = (): void => {
    row.push(cell);
    rows.push(row);
    row = [];
    cell = '';
  };
  while (i < text.length) {
    const ch = text.charAt(i);
    if (quoted) {
      if (ch === '"') {
        if (text.charAt(i + 1) === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      cell += ch;
      i++;
      continue;
    }
    if (ch === '"' && cell === '') {
      quoted = true;
      i++;
    } else if (ch === delimiter) {
      row.push(cell);
      cell = '';
      i++;
    } else if (ch === '\r' && text.charAt(i + 1) === '\n') {
      terminators.add('CRLF');
      endRow();
      i += 2;
    } else if (ch === '\n') {
      terminators.add('LF');
      endRow();
      i++;
    } else {
      cell += ch;
      i++;
    }
  }
  if (cell !== '' || row.length > 0) endRow();
  return { rows, terminators };
}

function quote(value: string): string {
  return `"${value.replace(/"/g, '""')}"`;
}

/** Result CSV as Salesforce writes it: sf__ headers quoted, the job's own headers as given, values quoted. */
export function writeResultCsv(sfHeaders: string[], headers: string[], rows: string[][], eol = '\n'): string {
  const head = [...sfHeaders.map(quote), ...headers].join(',');
  return [head, ...rows.map((r) => r.map(quote).join(','))].join(eol) + eol;
}
