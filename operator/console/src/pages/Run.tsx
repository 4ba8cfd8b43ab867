import { useEffect, useState } from 'preact/hooks';
import { api, type ApiError, type ConsoleRunDebug } from '../api.ts';
import { count, dateTime, duration } from '../format.ts';
import { routeHref } from '../route.ts';
import { Badge, Empty, ErrorBox, Section, useLoad } from '../ui.tsx';

export interface RunProps {
  namespace: string;
  name: string;
  id: string;
  /** The primary key searched for (in the URL, so a search can be shared). */
  searchKey?: string;
  onUnauthorized: (error: ApiError) => void;
}

/** One run as `kubectl syncline debug` shows it: stage timings, rejected rows, the request log. */
export function Run({ namespace, name, id, searchKey, onUnauthorized }: RunProps) {
  const debug = useLoad(
    () => api.debug(namespace, name, id, searchKey),
    [namespace, name, id, searchKey],
    onUnauthorized,
  );
  const d = debug.data;
  return (
    <>
      <nav class="crumbs">
        <a href={routeHref({ page: 'syncs' })}>Syncs</a> /{' '}
        <a href={routeHref({ page: 'syncs', namespace })}>{namespace}</a> /{' '}
        <a href={routeHref({ page: 'sync', namespace, name })}>{name}</a> / {id}
      </nav>
      <KeySearch route={{ namespace, name, id }} searchKey={searchKey} />
      {debug.error && <ErrorBox error={debug.error} />}
      {d && (
        <>
          <Section title={`Run ${d.id}`}>
            <Summary run={d} />
          </Section>
          <Section title="Stage timings">
            <Stages run={d} />
          </Section>
          <Section title={`Rejected rows${d.key !== undefined ? ` of key ${d.key}` : ''}`}>
            <Rejected run={d} />
          </Section>
          <Section title={`Request log${d.key !== undefined ? ` of key ${d.key}` : ''}`}>
            <Requests run={d} />
          </Section>
          {d.truncated && (
            <p class="note">
              More rows or requests matched than one answer carries; the first 500 are shown.
            </p>
          )}
        </>
      )}
    </>
  );
}

function KeySearch({
  route,
  searchKey,
}: {
  route: { namespace: string; name: string; id: string };
  searchKey?: string;
}) {
  const [key, setKey] = useState(searchKey ?? '');
  useEffect(() => setKey(searchKey ?? ''), [searchKey]);
  const go = (value: string) => {
    location.hash = routeHref({ page: 'run', ...route, ...(value ? { key: value } : {}) });
  };
  return (
    <form
      class="search"
      role="search"
      method="post"
      onSubmit={(e) => {
        e.preventDefault();
        go(key.trim());
      }}
    >
      <input
        type="search"
        aria-label="Primary key"
        placeholder="Search by primary key"
        value={key}
        onInput={(e) => setKey((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Search</button>
      {searchKey !== undefined && (
        <button type="button" class="secondary" onClick={() => go('')}>
          Show all
        </button>
      )}
    </form>
  );
}

function Summary({ run }: { run: ConsoleRunDebug }) {
  const c = run.counts;
  return (
    <dl class="facts">
      <dt>Result</dt>
      <dd>
        <Badge value={run.result} /> {run.reason} {run.stage ? `(in ${run.stage})` : ''}
      </dd>
      <dt>Message</dt>
      <dd class="wrap">{run.message}</dd>
      <dt>Time</dt>
      <dd>
        {dateTime(run.startedAt)} → {dateTime(run.finishedAt)}
        {run.fullResync ? ', full resync' : ''}
      </dd>
      <dt>Rows</dt>
      <dd>
        queried {count(c.queried)}: {count(c.added)} added, {count(c.changed)} changed, {count(c.removed)}{' '}
        removed; {count(c.delivered)} delivered, {count(c.failed)} failed
        {c.skipped ? `, ${count(c.skipped)} skipped` : ''}
      </dd>
    </dl>
  );
}

function Stages({ run }: { run: ConsoleRunDebug }) {
  if (run.stages.length === 0) return <Empty>The run recorded no timings.</Empty>;
  const total =
    run.stages.find((s) => s.stage === 'total')?.ms ?? Math.max(...run.stages.map((s) => s.ms), 1);
  return (
    <table class="grid stages" aria-label="Stage timings">
      <tbody>
        {run.stages.map((s) => (
          <tr key={s.stage}>
            <th>{s.stage}</th>
            <td class="num">{duration(s.ms)}</td>
            <td class="bar-cell">
              <div class="bar" style={{ width: `${Math.min(100, (s.ms / Math.max(total, 1)) * 100)}%` }} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Rejected({ run }: { run: ConsoleRunDebug }) {
  if (run.rejected.length === 0)
    return (
      <Empty>{run.key !== undefined ? `No rejected row has key ${run.key}.` : 'No row was rejected.'}</Empty>
    );
  return (
    <>
      {run.key === undefined && run.counts.failed > run.rejected.length && (
        <p class="note">
          The run names the first {run.rejected.length} of {count(run.counts.failed)} rejected rows.
        </p>
      )}
      <table class="grid" aria-label="Rejected rows">
        <thead>
          <tr>
            <th>Key</th>
            <th>Operation</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {run.rejected.map((r, i) => (
            <tr key={`${r.key}-${i}`}>
              <td>
                <code>{r.key}</code>
              </td>
              <td>{r.operation}</td>
              <td class="wrap">{r.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Requests({ run }: { run: ConsoleRunDebug }) {
  if (!run.requestLogKept)
    return <Empty>No request log was kept for this run (nothing sent, or past its retention).</Empty>;
  if (run.requests.length === 0) return <Empty>No request carried key {run.key}.</Empty>;
  return (
    <table class="grid" aria-label="Request log">
      <thead>
        <tr>
          <th>Time</th>
          <th>Operation</th>
          <th>Method</th>
          <th>URL</th>
          <th>Status</th>
          <th class="num">Duration</th>
          <th>Keys</th>
        </tr>
      </thead>
      <tbody>
        {run.requests.map((r, i) => (
          <tr key={i}>
            <td title={r.ts}>{dateTime(r.ts)}</td>
            <td>{r.operation}</td>
            <td>{r.method}</td>
            <td class="wrap">
              <code>{r.url}</code>
              {r.error && <div class="muted">{r.error}</div>}
            </td>
            <td>
              <Badge value={statusTone(r.status)} label={String(r.status ?? '?')} />
            </td>
            <td class="num">{duration(r.durationMs)}</td>
            <td class="wrap">
              {r.keys.join(', ')}
              {r.keyCount > r.keys.length ? ` … (${count(r.keyCount)})` : ''}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function statusTone(status: number | string | undefined): string {
  if (typeof status === 'number' && status >= 200 && status < 300) return 'Succeeded';
  if (typeof status === 'number' && status === 429) return 'Pending';
  return 'Failed';
}
