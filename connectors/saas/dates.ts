// Dates and timestamps as a model hands them over (DuckDB's or ISO 8601 text), read once for every SaaS
// destination: each then writes them in its own format (HubSpot epoch milliseconds, Salesforce ISO).

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
/** A timestamp as DuckDB or ISO 8601 writes it; no zone means UTC. */
const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Epoch milliseconds of a date (midnight UTC) or a timestamp text (UTC when it names no zone; digits
 * beyond milliseconds dropped, as both tools keep milliseconds); undefined for any other text, and for a
 * day that does not exist (Date.UTC would roll 2024-02-30 over to March).
 */
export function epochMsOfText(value: string): number | undefined {
  const text = value.trim();
  const day = /^(\d{4})-(\d{2})-(\d{2})/.exec(text);
  if (day) {
    const ms = Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3]));
    if (new Date(ms).toISOString().slice(0, 10) !== day[0]) return undefined;
  }
  const date = DATE_ONLY.exec(text);
  if (date) return Date.UTC(Number(date[1]), Number(date[2]) - 1, Number(date[3]));
  const ts = TIMESTAMP.exec(text);
  if (!ts) return undefined;
  let zone = ts[3] ?? 'Z';
  if (/^[+-]\d{2}$/.test(zone)) zone = `${zone}:00`;
  else if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const time = (ts[2] as string).replace(/(\.\d{3})\d+$/, '$1');
  const ms = Date.parse(`${ts[1]}T${time}${zone}`);
  return Number.isNaN(ms) ? undefined : ms;
}
